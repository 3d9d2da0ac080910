/** The part of autocannon 8's programmatic API the benchmarks use (it ships no types). */
declare module "autocannon" {
	import type { EventEmitter } from "node:events";

	namespace autocannon {
		interface Options {
			url: string;
			connections?: number;
			/** Seconds. */
			duration?: number;
			/** Stop after this many requests instead (overrides duration). */
			amount?: number;
			pipelining?: number;
			/** Seconds a request may take before it counts as a timeout. */
			timeout?: number;
			method?: string;
			headers?: Record<string, string>;
			body?: string;
		}

		/** hdr-histogram-percentiles-obj. Latency in ms, requests and throughput per second. */
		interface Histogram {
			average: number;
			mean: number;
			stddev: number;
			min: number;
			max: number;
			total: number;
			p2_5: number;
			p50: number;
			p75: number;
			p90: number;
			p97_5: number;
			p99: number;
			p99_9: number;
			p99_99: number;
			p99_999: number;
		}

		interface Result {
			url: string;
			requests: Histogram;
			latency: Histogram;
			throughput: Histogram;
			/** Seconds. */
			duration: number;
			/** Connection errors, timeouts included. */
			errors: number;
			timeouts: number;
			mismatches: number;
			non2xx: number;
			resets: number;
			connections: number;
			pipelining: number;
			statusCodeStats: Record<string, { count: number }>;
			start: Date;
			finish: Date;
		}

		/** Without a callback the instance is also a promise of the result. */
		interface Instance extends EventEmitter, PromiseLike<Result> {
			stop(): void;
		}
	}

	function autocannon(opts: autocannon.Options): autocannon.Instance;
	export = autocannon;
}
