// Minimal types for @xmpp/component 0.13 (CommonJS, ships no types), as far as the
// transport-component benchmark uses it to compare against xmppbus's own XEP-0114 transport.
declare module '@xmpp/component' {
  import type { Element } from 'ltx';
  import type { Socket } from 'node:net';

  interface IqCallee {
    get(
      ns: string,
      name: string,
      handler: (ctx: { stanza: Element }) => Element | boolean | Promise<Element | boolean>,
    ): void;
  }
  interface XmppComponent {
    start(): Promise<void>;
    stop(): Promise<void>;
    send(el: Element): Promise<void>;
    on(event: 'stanza', fn: (el: Element) => void): void;
    on(event: 'error', fn: (err: Error) => void): void;
    reconnect: { stop(): void };
    iqCallee: IqCallee;
    socket: Socket | undefined;
  }
  export function component(options: { service: string; domain: string; password: string }): XmppComponent;
  export function xml(name: string, attrs?: Record<string, string>, ...children: (Element | string)[]): Element;
}
