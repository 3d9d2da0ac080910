/**
 * The lean metrics middleware against Moleculer's own: the same traffic
 * (local and nested calls, failures, events emitted, broadcast and broadcast
 * locally) leaves the same families, label sets and counts.
 */
import { Errors, ServiceBroker, type Context } from "moleculer";
import { installLeanMetrics, uninstallLeanMetrics } from "../../lib/lean-metrics-middleware";
import { leanMetrics } from "../../lib/lean-metrics";

interface Listed {
	name: string;
	type: string;
	labelNames: string[];
	values: { labels: Record<string, unknown>; value?: number; count?: number; buckets?: Record<string, number> }[];
}

async function traffic(lean: boolean) {
	if (lean) installLeanMetrics();
	else uninstallLeanMetrics();
	const broker = new ServiceBroker({ nodeID: "metrics-test", logger: false, metrics: { enabled: true, reporter: [] } });
	leanMetrics(broker);
	const metricsMiddleware = (broker.middlewares as unknown as { list: { name?: string; lean?: boolean }[] }).list.find(m => m.name === "Metrics");
	expect(!!metricsMiddleware?.lean).toBe(lean);
	let seen = 0;
	broker.createService({
		name: "svc",
		actions: {
			ok: () => "ok",
			fail: () => {
				throw new Errors.MoleculerClientError("no", 404, "NOPE");
			},
		},
		events: {
			"thing.happened"() {
				seen++;
			},
		},
	});
	broker.createService({ name: "relay", actions: { ok: (ctx: Context) => ctx.call("svc.ok") } });
	await broker.start();
	for (let i = 0; i < 7; i++) {
		await broker.call("svc.ok");
		await broker.call("relay.ok");
		await broker.call("svc.fail").catch(() => undefined);
		await broker.emit("thing.happened", { i });
		await broker.broadcast("thing.happened", { i });
		await broker.broadcastLocal("thing.happened", { i });
	}
	expect(seen).toBe(21);
	const list = (broker.metrics.list({ includes: ["moleculer.request.**", "moleculer.event.**"] }) as unknown as Listed[]).map(m => ({
		name: m.name,
		type: m.type,
		labelNames: m.labelNames,
		// Times differ run to run: the number of observations and the bucket bounds must not.
		values: m.values
			.map(v => ({ labels: v.labels, value: v.value, count: v.count, bucketBounds: v.buckets ? Object.keys(v.buckets) : undefined }))
			.sort((a, b) => JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels))),
	}));
	await broker.stop();
	return list.sort((a, b) => a.name.localeCompare(b.name));
}

afterAll(() => installLeanMetrics());

it("counts exactly what Moleculer's own metrics middleware counts", async () => {
	const stock = await traffic(false);
	const lean = await traffic(true);
	expect(stock.length).toBeGreaterThan(8);
	expect(stock.find(m => m.name === "moleculer.request.total")!.values.length).toBeGreaterThanOrEqual(3);
	expect(stock.find(m => m.name === "moleculer.request.time")!.values[0].count).toBeGreaterThan(0);
	expect(lean).toEqual(stock);
});
