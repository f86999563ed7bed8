// @xmppbus/server — work in progress.
export {};
