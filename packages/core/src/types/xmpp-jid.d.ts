declare module '@xmpp/jid' {
  export class JID {
    getLocal(): string;
    getDomain(): string;
    getResource(): string;
    bare(): JID;
    toString(): string;
  }
  export function jid(value: string): JID;
  export function parse(value: string): JID;
}
