/**
 * Moleculer's Redis cacher, made a cache again when Redis fails: a read that
 * fails (Redis down, or paused and the command timed out) is a miss and a
 * failed write is skipped, instead of failing the action it wraps with a 500.
 * After a failure Redis is left alone for a moment (every call would otherwise
 * wait out the command timeout), and its errors are logged once per interval.
 *
 * A clean (invalidation) that fails is kept and retried until it succeeds, and
 * until then every read is a miss: an entry the clean should have removed must
 * not be served for the rest of its TTL once Redis is back.
 */
import { Cachers } from "moleculer";
import { failFastOptions, redisOptionsFromUrl, watchRedisErrors } from "./redis";

/** How long the cacher skips Redis after a failed command. */
const BACK_OFF_MS = 2000;
/** Invalidations kept for retry at most (beyond that, everything is cleaned). */
const MAX_PENDING_CLEANS = 1000;

export class ResilientRedisCacher extends Cachers.Redis {
	private downUntil = 0;
	private readonly pendingCleans = new Set<string>();
	private retryTimer?: NodeJS.Timeout;

	constructor(opts: { url: string; prefix: string; ttl: number; name: string }) {
		super({ prefix: opts.prefix, ttl: opts.ttl, redis: { ...redisOptionsFromUrl(opts.url), ...failFastOptions(opts.name, { commandTimeoutMs: 500 }) } as never });
	}

	override init(broker: Parameters<Cachers.Redis["init"]>[0]) {
		super.init(broker);
		const client = (this as unknown as { client: import("ioredis").Redis }).client;
		// Moleculer logs every error at ERROR with a stack (one per reconnect attempt): replace it.
		client.removeAllListeners("error");
		client.on("error", () => ((this as unknown as { connected: boolean }).connected = false));
		watchRedisErrors(client, "cacher", this.logger);
	}

	override get(key: string): Promise<Record<string, unknown> | null> {
		if (Date.now() < this.downUntil || this.pendingCleans.size) return Promise.resolve(this.missing());
		return super.get(key).catch(() => this.failed(this.missing()));
	}

	override set(key: string, data: unknown, ttl?: number) {
		if (Date.now() < this.downUntil) return Promise.resolve(undefined);
		return super.set(key, data, ttl).catch(() => this.failed(undefined));
	}

	/** Exactly what the cacher answers for a miss (the middleware compares with !==). */
	override clean(match: string | string[] = "*"): Promise<void> {
		const patterns = Array.isArray(match) ? match : [match];
		return this.cleanNow(patterns).then(() => undefined, () => {
			if (this.pendingCleans.size + patterns.length > MAX_PENDING_CLEANS) {
				this.pendingCleans.clear();
				this.pendingCleans.add("*");
			} else for (const p of patterns) this.pendingCleans.add(p);
			this.failed(undefined);
			this.retryTimer ??= setInterval(() => void this.retryCleans(), BACK_OFF_MS);
		});
	}

	override async close() {
		clearInterval(this.retryTimer);
		return super.close();
	}

	private cleanNow(patterns: string[]): Promise<unknown> {
		const scanDel = (this as unknown as { _sequentialPromises(p: string[]): Promise<unknown> })._sequentialPromises.bind(this);
		return scanDel(patterns.map(m => this.prefix + m.replace(/\*\*/g, "*")));
	}

	private async retryCleans(): Promise<void> {
		if (Date.now() < this.downUntil) return;
		const patterns = [...this.pendingCleans];
		try {
			await this.cleanNow(patterns);
			for (const p of patterns) this.pendingCleans.delete(p);
			if (!this.pendingCleans.size) {
				clearInterval(this.retryTimer);
				this.retryTimer = undefined;
			}
		} catch {
			this.failed(undefined);
		}
	}

	private missing(): Record<string, unknown> | null {
		return (this.opts as { missingResponse: Record<string, unknown> | null }).missingResponse;
	}

	private failed<T>(answer: T): T {
		this.downUntil = Date.now() + BACK_OFF_MS;
		return answer;
	}
}
