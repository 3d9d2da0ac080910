/**
 * Moleculer's Prometheus reporter with two changes for a platform whose
 * metrics port must not be a window into the host:
 * - it binds to the configured address (Moleculer's drops the host when the
 *   port is 0 and then listens on every interface);
 * - it leaves out the info metrics that identify the machine and its people:
 *   OS user and home directory, hostname, network addresses and MAC
 *   addresses, and the process's command line.
 */
import { MetricReporters } from "moleculer";

export const HOST_IDENTIFYING_METRICS = ["os.hostname", "os.user.**", "os.network.**", "process.arguments"];

/** A reporter instance: Moleculer takes one in `metrics.reporter`, though its typings list only option objects. */
export function createPrometheusReporter(opts: { port: number; host: string }): never {
	const reporter = new MetricReporters.Prometheus({ port: opts.port, excludes: HOST_IDENTIFYING_METRICS });
	(reporter as unknown as { opts: { host?: string } }).opts.host = opts.host;
	return reporter as never;
}
