/**
 * Moleculer's Prometheus reporter with three changes:
 * - it binds to the configured address (Moleculer's drops the host when the
 *   port is 0 and then listens on every interface);
 * - it leaves out the info metrics that identify the machine and its people:
 *   OS user and home directory, hostname, network addresses and MAC
 *   addresses, and the process's command line;
 * - a histogram without quantiles (all of ours, see lean-metrics.ts) gets its
 *   `_sum` and `_count` lines: Moleculer prints them only beside quantiles,
 *   and without them Prometheus cannot average a histogram.
 */
import { MetricReporters } from "moleculer";

export const HOST_IDENTIFYING_METRICS = ["os.hostname", "os.user.**", "os.network.**", "process.arguments"];

interface HistogramLike {
	name: string;
	type: string;
	quantiles?: number[];
	buckets?: number[];
	values: Map<string, { labels: Record<string, unknown>; sum: number; count: number }>;
}

interface ReporterInternals {
	opts: { host?: string };
	registry: { store: Map<string, HistogramLike> };
	matchMetricName(name: string): boolean;
	formatMetricName(name: string): string;
	labelsToStr(labels: Record<string, unknown>, extra?: Record<string, unknown>): string;
}

class PlatformPrometheusReporter extends MetricReporters.Prometheus {
	override generatePrometheusResponse(): string {
		const text = super.generatePrometheusResponse();
		const self = this as unknown as ReporterInternals;
		// The `+Inf` bucket line of each series → its sum and count, written right after it.
		const after = new Map<string, string>();
		for (const metric of self.registry.store.values()) {
			if (metric.type !== "histogram" || metric.quantiles || !metric.buckets || !self.matchMetricName(metric.name)) continue;
			const name = self.formatMetricName(metric.name).replace(/[.-]/g, "_");
			for (const item of metric.values.values()) {
				const inf = `${name}_bucket${self.labelsToStr(item.labels, { le: "+Inf" })} ${item.count}`;
				const labels = self.labelsToStr(item.labels);
				after.set(inf, `${name}_sum${labels} ${item.sum}\n${name}_count${labels} ${item.count}`);
			}
		}
		if (!after.size) return text;
		return text
			.split("\n")
			.map(line => {
				const extra = after.get(line);
				return extra === undefined ? line : `${line}\n${extra}`;
			})
			.join("\n");
	}
}

/** A reporter instance: Moleculer takes one in `metrics.reporter`, though its typings list only option objects. */
export function createPrometheusReporter(opts: { port: number; host: string }): never {
	const reporter = new PlatformPrometheusReporter({ port: opts.port, excludes: HOST_IDENTIFYING_METRICS });
	(reporter as unknown as ReporterInternals).opts.host = opts.host;
	return reporter as never;
}
