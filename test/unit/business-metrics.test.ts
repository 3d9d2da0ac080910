import { MetricReporters, ServiceBroker } from "moleculer";
import { createPrometheusReporter } from "../../lib/prometheus-reporter";
import { BUSINESS_METRICS, labelValue, meter, meters, openResult, wentFiring } from "../../lib/business-metrics";

/** Reporters listen from the broker's construction on: each is closed after its test. */
const reporters: { stop(): Promise<unknown> }[] = [];
afterEach(async () => {
	await Promise.all(reporters.splice(0).map(r => r.stop().catch(() => undefined))); // a stopped broker closed its own
});

function brokerWithReporter() {
	const reporter = createPrometheusReporter({ port: 0, host: "127.0.0.1" }) as unknown as InstanceType<typeof MetricReporters.Prometheus>;
	reporters.push(reporter as unknown as { stop(): Promise<unknown> });
	const broker = new ServiceBroker({ logger: false, nodeID: "n1", metrics: { enabled: true, reporter: [reporter as never] } });
	return { broker, text: () => (reporter as unknown as { generatePrometheusResponse(): string }).generatePrometheusResponse() };
}

/** The value of one sample line (`name{labels} value`), labels given in the order they are printed. */
function sample(text: string, name: string, labels: string): number | undefined {
	const line = text.split("\n").find(l => l.startsWith(`${name}{`) && l.includes(labels));
	return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("business metrics", () => {
	it("every family is valid for Moleculer, named once, has help text, and no id label", () => {
		const { broker } = brokerWithReporter();
		const names = new Set<string>();
		for (const spec of Object.values(BUSINESS_METRICS)) {
			expect(names.has(spec.name)).toBe(false);
			names.add(spec.name);
			expect(spec.help.length).toBeGreaterThan(10);
			for (const l of spec.labelNames) expect(l).not.toMatch(/id$/i);
			meter(broker, spec); // Moleculer's register throws on an invalid name or label
			expect(broker.metrics.getMetric(spec.name)).toMatchObject({ type: spec.type, description: spec.help });
		}
	});

	it("counts, sets and observes through Moleculer's registry, and shows help text and the node", async () => {
		const { broker, text } = brokerWithReporter();
		await broker.start();
		try {
			const m = meters(broker, { opens: BUSINESS_METRICS.doorOpens, online: BUSINESS_METRICS.cabinetsOnline, fen: BUSINESS_METRICS.paymentsCapturedFen });
			m.opens.inc({ purpose: "deposit", result: "ok" });
			m.opens.inc({ purpose: "deposit", result: "ok" });
			m.opens.inc({ purpose: "pickup", result: "DOOR_TIMEOUT" });
			m.online.set(3);
			m.fen.inc({ provider: "sandbox" }, 800);
			const out = text();
			expect(out).toContain(`# HELP doors_opens_total ${BUSINESS_METRICS.doorOpens.help}`);
			expect(out).toContain("# TYPE doors_opens_total counter");
			expect(sample(out, "doors_opens_total", 'purpose="deposit",result="ok"')).toBe(2);
			expect(sample(out, "doors_opens_total", 'purpose="pickup",result="DOOR_TIMEOUT"')).toBe(1);
			expect(sample(out, "doors_cabinets_online", 'nodeID="n1"')).toBe(3);
			expect(sample(out, "billing_payments_captured_fen_total", 'provider="sandbox"')).toBe(800);
			// A second meter of the same family shares it.
			meter(broker, BUSINESS_METRICS.doorOpens).inc({ purpose: "deposit", result: "ok" });
			expect(sample(text(), "doors_opens_total", 'purpose="deposit",result="ok"')).toBe(3);
		} finally {
			await broker.stop();
		}
	});

	it("a bound series counts exactly what Moleculer's own path counts, buckets included", async () => {
		const { broker, text } = brokerWithReporter();
		const values = [0, 0.01, 0.02, 0.07, 0.3, 1, 4, 99, 100, 250];
		const fast = meter(broker, BUSINESS_METRICS.nearbyLatency).bind();
		const cache = meter(broker, BUSINESS_METRICS.nearbyCache);
		const hit = cache.bind({ result: "hit" });
		cache.bind({ result: "miss" });
		for (const v of values) fast.observe(v);
		hit.add(1);
		hit.add(1);
		const bound = text();

		const { broker: other, text: otherText } = brokerWithReporter();
		const slow = meter(other, BUSINESS_METRICS.nearbyLatency);
		for (const v of values) slow.observe(v);
		meter(other, BUSINESS_METRICS.nearbyCache).inc({ result: "hit" }, 2);
		const reference = otherText();

		const lines = (t: string, prefix: string) => t.split("\n").filter(l => l.startsWith(prefix));
		expect(lines(bound, "geo_nearby_duration_ms")).toEqual(lines(reference, "geo_nearby_duration_ms"));
		expect(sample(bound, "geo_nearby_duration_ms_bucket", 'le="0.02"')).toBe(3);
		expect(sample(bound, "geo_nearby_duration_ms_bucket", 'le="100"')).toBe(9);
		expect(sample(bound, "geo_nearby_duration_ms_bucket", 'le="+Inf"')).toBe(10);
		// Sum and count, which Moleculer prints only beside quantiles (lib/prometheus-reporter.ts adds them).
		expect(bound).toMatch(/^geo_nearby_duration_ms_count\{[^}]*\} 10$/m);
		expect(sample(bound, "geo_nearby_duration_ms_sum", "nodeID")).toBeCloseTo(values.reduce((a, b) => a + b, 0), 9);
		expect(sample(bound, "geo_nearby_cache", 'result="hit"')).toBe(2);
		// Bound before its first event, a series is shown at 0.
		expect(sample(bound, "geo_nearby_cache", 'result="miss"')).toBe(0);
	});

	it("with metrics off, costs nothing and never throws", () => {
		const broker = new ServiceBroker({ logger: false, metrics: false });
		const m = meter(broker, BUSINESS_METRICS.doorOpens);
		expect(() => {
			m.inc({ purpose: "deposit", result: "ok" });
			m.set(1);
			m.observe(2);
			m.bind({ purpose: "deposit", result: "ok" }).add(1);
			m.bind().observe(1);
		}).not.toThrow();
		expect(broker.metrics.getMetric(BUSINESS_METRICS.doorOpens.name)).toBeNull();
	});

	it("ignores a value that is not a number rather than poisoning the series", () => {
		const { broker, text } = brokerWithReporter();
		const fen = meter(broker, BUSINESS_METRICS.paymentsCapturedFen);
		fen.inc({ provider: "sandbox" }, 500);
		fen.inc({ provider: "sandbox" }, NaN);
		fen.inc({ provider: "sandbox" }, Infinity);
		expect(sample(text(), "billing_payments_captured_fen_total", 'provider="sandbox"')).toBe(500);
	});
});

describe("label values", () => {
	it("keeps names and error types, and turns anything else into OTHER", () => {
		expect(labelValue("DOOR_TIMEOUT")).toBe("DOOR_TIMEOUT");
		expect(labelValue("sandbox")).toBe("sandbox");
		for (const bad of ["", "x".repeat(41), 'a"b', "a b", "ord_123/../", "1abc", "门", null, undefined, 42, {}]) expect(labelValue(bad)).toBe("OTHER");
	});

	it("a door open's result is ok, or the error's type, bounded", () => {
		expect(openResult(undefined)).toBe("ok");
		expect(openResult({ type: "CABINET_OFFLINE" })).toBe("CABINET_OFFLINE");
		expect(openResult(new Error("boom"))).toBe("OTHER");
		expect(openResult({ type: "x".repeat(200) })).toBe("OTHER");
	});
});

describe("wentFiring", () => {
	it("is true once, when an alert enters firing", () => {
		expect(wentFiring(null, { state: "firing" })).toBe(true);
		expect(wentFiring({ state: "pending" }, { state: "firing" })).toBe(true);
		expect(wentFiring({ state: "resolved" }, { state: "firing" })).toBe(true);
		expect(wentFiring({ state: "firing" }, { state: "firing" })).toBe(false);
		expect(wentFiring(null, { state: "pending" })).toBe(false);
		expect(wentFiring({ state: "firing" }, { state: "resolved" })).toBe(false);
		expect(wentFiring({ state: "firing" }, null)).toBe(false);
	});
});
