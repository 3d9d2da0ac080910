import { ServiceBroker } from "moleculer";
import { leanMetrics } from "../../lib/lean-metrics";

describe("leanMetrics", () => {
	it("drops quantiles and rate meters but keeps names, labels and buckets that Prometheus scrapes", async () => {
		const broker = new ServiceBroker({ logger: false, metrics: { enabled: true, reporter: [] } });
		broker.createService({ name: "echo", actions: { hi: () => "hi" } });
		const before = broker.metrics.getMetric("moleculer.request.time") as any;
		expect(before.quantiles).toBeTruthy();

		expect(leanMetrics(broker)).toBeGreaterThan(0);
		await broker.start();
		try {
			await broker.call("echo.hi");
			const after = broker.metrics.getMetric("moleculer.request.time") as any;
			expect(after.quantiles).toBeFalsy();
			expect(after.buckets).toEqual(before.buckets);
			expect(after.labelNames).toEqual(before.labelNames);
			const item = [...after.values.values()].find((v: any) => v.labels.action === "echo.hi");
			expect(item).toMatchObject({ labels: { service: "echo", action: "echo.hi" }, count: 1 });
			expect(item.quantileValues).toBeFalsy();
			expect((broker.metrics.getMetric("moleculer.request.total") as any).rate).toBeFalsy();
		} finally {
			await broker.stop();
		}
	});

	it("does nothing when metrics are off", () => {
		const broker = new ServiceBroker({ logger: false, metrics: false });
		expect(leanMetrics(broker)).toBe(0);
	});
});
