// Metrics through a real Prometheus: a bus (on real Prosody and ejabberd) exposes its metrics with
// @opentelemetry/exporter-prometheus on a loopback port; Debian's Prometheus, started by the
// harness with a temp config and data dir, scrapes it every second. We poll Prometheus' HTTP API
// until the call-duration histogram and the outbox gauge appear with their labels.
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { createBus, createLogger, type Bus, type BusConfig } from '@xmppbus/bus';
import { CreateOrder, describeServers, freePort, startPrometheus, type PrometheusSample } from '@xmppbus/testing';
import { afterEach, expect, it } from 'vitest';

/** Polls `promql` until it returns samples, with a deadline (scrapes are every second). */
async function until(query: (q: string) => Promise<PrometheusSample[]>, promql: string): Promise<PrometheusSample[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await query(promql);
    if (r.length > 0) return r;
    if (Date.now() > deadline) throw new Error(`prometheus: nothing for ${promql} within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describeServers('telemetry: metrics scraped by Prometheus', (server, kind) => {
  const open: Bus[] = [];
  const providers: MeterProvider[] = [];
  afterEach(async () => {
    for (const b of open.splice(0).reverse()) await b.close();
    for (const p of providers.splice(0)) await p.shutdown();
  });

  function config(domain: string): BusConfig {
    const srv = server();
    return {
      name: domain,
      transport: { kind: 'component', service: srv.componentService(), domain, password: srv.componentSecret },
      rpc: { client: { timeout: 15_000 } },
      messaging: { attemptTimeout: 10_000 },
    };
  }

  it(`call-duration histogram and outbox gauge reach Prometheus with their labels [${kind}]`, async () => {
    const port = await freePort();
    const exporter = new PrometheusExporter({ host: '127.0.0.1', port });
    const meterProvider = new MeterProvider({ readers: [exporter] });
    providers.push(meterProvider);
    const logger = createLogger({ level: 'silent' });
    const orders = await createBus(config('svc-a.localhost'), { env: {}, logger, telemetry: { meterProvider } });
    open.push(orders);
    const web = await createBus(config('svc-b.localhost'), { env: {}, logger, telemetry: { meterProvider } });
    open.push(web);
    orders.rpc.handle(CreateOrder, ({ sku }) => ({ orderId: `${sku}-1`, total: 1 }));
    await orders.start({ timeout: 20_000 });
    await web.start({ timeout: 20_000 });
    void web.messenger; // built, so its outbox gauge is reported
    await web.start({ timeout: 20_000 });
    for (let i = 0; i < 5; i++) await web.client.call(CreateOrder, 'svc-a.localhost', { sku: `P${i}`, qty: 1 });

    await using prom = await startPrometheus({ targets: [`127.0.0.1:${port}`], scrapeInterval: '1s' });
    const hist = await until(
      (q) => prom.query(q),
      '{__name__=~"rpc_client_call_duration(_seconds)?_count", rpc_method="create", xmppbus_outcome="ok"}',
    );
    expect(hist[0]!.metric).toMatchObject({ rpc_system: 'xmpp', rpc_service: CreateOrder.ns, job: 'xmppbus' });
    expect(Number(hist[0]!.value[1])).toBe(5);
    const server_ = await until(
      (q) => prom.query(q),
      '{__name__=~"rpc_server_call_duration(_seconds)?_bucket", rpc_method="create", le="+Inf"}',
    );
    expect(Number(server_[0]!.value[1])).toBe(5);
    const outbox = await until((q) => prom.query(q), '{__name__=~"xmppbus_outbox_messages", xmppbus_unit="messenger"}');
    expect(outbox[0]!.metric).toMatchObject({ xmppbus_address: 'svc-b.localhost' });
    expect(Number(outbox[0]!.value[1])).toBe(0);
    const online = await until(
      (q) => prom.query(q),
      '{__name__=~"xmppbus_connection_state", xmppbus_connection_status="online", xmppbus_address="svc-a.localhost"}',
    );
    expect(Number(online[0]!.value[1])).toBe(1);
  });
});
