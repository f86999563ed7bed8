// @xmppbus/cli — work in progress.
export {};
