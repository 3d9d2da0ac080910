/**
 * Counting limits with rate-limiter-flexible: the gateway's request budgets
 * and the users service's sign-in throttle. `consume` is one atomic step (a
 * Lua script on Redis, a synchronous update in memory), so parallel requests
 * cannot slip between a check and a count. With `REDIS_URL` every replica
 * counts in the same Redis; while Redis is unreachable or paused each node
 * counts in its own memory instead (a request never waits on a dead Redis for
 * more than one short command timeout, and then not again for a while), so
 * limits stay in force per node rather than failing every request.
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { createRedis } from "./redis";

export { RateLimiterRes };

export interface LimiterSpec {
	/** Separates this limiter's keys from every other's. */
	name: string;
	points: number;
	durationMs: number;
	/** Once the points are spent, refuse for this long (from that moment). */
	blockMs?: number;
}

/** What the platform uses of a limiter. */
export interface Limiter {
	readonly points: number;
	consume(key: string, points?: number, options?: { customDuration?: number }): Promise<RateLimiterRes>;
	reward(key: string, points?: number): Promise<RateLimiterRes>;
	delete(key: string): Promise<boolean>;
}

export interface LimiterFactory {
	create(spec: LimiterSpec): Limiter;
	close(): Promise<unknown>;
}

/** After Redis failed a command, count in memory for this long before trying Redis again. */
const FALLBACK_MS = 2000;

/** Redis first; on a store failure (not a refusal), memory for a while. */
class FailoverLimiter implements Limiter {
	constructor(private readonly primary: RateLimiterAbstract, private readonly fallback: RateLimiterAbstract, private readonly health: { downUntil: number }) {}

	get points() {
		return this.primary.points;
	}

	private async either<T>(op: (l: RateLimiterAbstract) => Promise<T>): Promise<T> {
		if (Date.now() < this.health.downUntil) return op(this.fallback);
		try {
			return await op(this.primary);
		} catch (err) {
			if (err instanceof RateLimiterRes) throw err; // a refusal, not a failure
			this.health.downUntil = Date.now() + FALLBACK_MS;
			return op(this.fallback);
		}
	}

	consume(key: string, points = 1, options?: { customDuration?: number }) {
		return this.either(l => l.consume(key, points, options));
	}
	reward(key: string, points = 1) {
		return this.either(l => l.reward(key, points));
	}
	delete(key: string) {
		return this.either(l => l.delete(key));
	}
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export function createLimiterFactory(
	opts: { redisUrl?: string; namespace: string; logger?: { warn(...args: unknown[]): void } },
	clientName: string,
): LimiterFactory {
	const memory = (spec: LimiterSpec) =>
		new RateLimiterMemory({
			keyPrefix: spec.name,
			points: spec.points,
			duration: seconds(spec.durationMs),
			blockDuration: spec.blockMs ? seconds(spec.blockMs) : 0,
		});
	if (!opts.redisUrl) return { create: memory, close: async () => undefined };
	const redis = createRedis(opts.redisUrl, clientName, { commandTimeoutMs: 500, logger: opts.logger });
	const health = { downUntil: 0 };
	return {
		create: spec =>
			new FailoverLimiter(
				new RateLimiterRedis({
					storeClient: redis,
					keyPrefix: `${opts.namespace}:${spec.name}`,
					points: spec.points,
					duration: seconds(spec.durationMs),
					blockDuration: spec.blockMs ? seconds(spec.blockMs) : 0,
					rejectIfRedisNotReady: true,
				}),
				memory(spec),
				health,
			),
		close: () => redis.quit(),
	};
}

/** `consume` that answers a refusal instead of throwing it; store failures still throw. */
export async function tryConsume(
	limiter: Limiter,
	key: string,
	points = 1,
	options?: { customDuration?: number },
): Promise<{ allowed: boolean; res: RateLimiterRes }> {
	try {
		return { allowed: true, res: await limiter.consume(key, points, options) };
	} catch (err) {
		if (err instanceof RateLimiterRes) return { allowed: false, res: err };
		throw err;
	}
}
