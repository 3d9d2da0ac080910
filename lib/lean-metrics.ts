/**
 * Moleculer registers its per-request and per-event histograms with sliding-window
 * quantiles, which keep every sample of the last minute in arrays and sort them,
 * and gives most metrics a rate meter. Prometheus uses neither: it computes
 * quantiles and rates from the buckets and counters it scrapes. At gateway load
 * they cost a large share of a request's CPU and feed the garbage collector, so
 * this re-registers those metrics (same names, labels, units and buckets) without
 * them. Call it right after constructing the broker, before services start.
 */
import type { ServiceBroker } from "moleculer";

interface RegisteredMetric {
	name: string;
	type: string;
	description?: string;
	labelNames: string[];
	unit?: string;
	aggregator?: string;
	buckets?: number[];
	quantiles?: number[];
	rate?: unknown;
}

export function leanMetrics(broker: ServiceBroker): number {
	const registry = broker.metrics as unknown as { store: Map<string, RegisteredMetric>; register(opts: object): unknown };
	if (!broker.isMetricsEnabled() || !(registry.store instanceof Map)) return 0;
	let changed = 0;
	for (const metric of [...registry.store.values()]) {
		if (!metric.quantiles && !metric.rate) continue;
		registry.register({
			name: metric.name,
			type: metric.type,
			description: metric.description,
			labelNames: metric.labelNames,
			unit: metric.unit,
			aggregator: metric.aggregator,
			...(metric.buckets ? { buckets: metric.buckets } : {}),
		});
		changed++;
	}
	return changed;
}
