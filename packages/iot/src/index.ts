// @xmppbus/iot — work in progress.
export {};
