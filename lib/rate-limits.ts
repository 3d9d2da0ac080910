/**
 * Counting limits with rate-limiter-flexible: the gateway's request budgets
 * and the users service's sign-in throttle. `consume` is one atomic step (a
 * Lua script on Redis, a synchronous update in memory), so parallel requests
 * cannot slip between a check and a count. With `REDIS_URL` every replica
 * counts in the same Redis; while Redis is unreachable each node falls back
 * to counting in its own memory rather than refusing everyone.
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

export interface LimiterFactory {
	create(spec: LimiterSpec): RateLimiterAbstract;
	close(): Promise<unknown>;
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export function createLimiterFactory(opts: { redisUrl?: string; namespace: string }, clientName: string): LimiterFactory {
	const memory = (spec: LimiterSpec) =>
		new RateLimiterMemory({
			keyPrefix: spec.name,
			points: spec.points,
			duration: seconds(spec.durationMs),
			blockDuration: spec.blockMs ? seconds(spec.blockMs) : 0,
		});
	if (!opts.redisUrl) return { create: memory, close: async () => undefined };
	const redis = createRedis(opts.redisUrl, clientName);
	return {
		create: spec =>
			new RateLimiterRedis({
				storeClient: redis,
				keyPrefix: `${opts.namespace}:${spec.name}`,
				points: spec.points,
				duration: seconds(spec.durationMs),
				blockDuration: spec.blockMs ? seconds(spec.blockMs) : 0,
				rejectIfRedisNotReady: true,
				insuranceLimiter: memory(spec),
			}),
		close: () => redis.quit(),
	};
}

/** `consume` that answers a refusal instead of throwing it; store failures still throw. */
export async function tryConsume(
	limiter: RateLimiterAbstract,
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
