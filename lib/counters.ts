/**
 * Expiring counters shared by the rate limiter (gateway) and login throttling
 * (users). In one process a Map is enough; with several gateway or users
 * replicas the counts must be shared, so `REDIS_URL` switches to Redis, where
 * each operation is one atomic Lua call.
 */
import type { Redis } from "ioredis";
import { createRedis } from "./redis";

export interface CounterState {
	/** Hits inside the current window. */
	count: number;
	/** When the first hit of this window happened (ms). */
	firstAt: number;
	/** When the last hit happened (ms). */
	lastAt: number;
	/** When the counter expires (ms). */
	expiresAt: number;
}

export interface CounterStore {
	/**
	 * Count one hit for `key`. `ttlMs` is measured from the first hit of the
	 * window (fixed window) unless `slide` is set, then from this hit.
	 */
	hit(key: string, ttlMs: number, now: number, slide?: boolean): Promise<CounterState>;
	get(key: string, now: number): Promise<CounterState | null>;
	clear(key: string): Promise<void>;
}

export class MemoryCounterStore implements CounterStore {
	private readonly entries = new Map<string, CounterState>();
	private sweepAt = 0;

	async hit(key: string, ttlMs: number, now: number, slide = false): Promise<CounterState> {
		this.sweep(now);
		let e = this.entries.get(key);
		if (!e || e.expiresAt <= now) {
			e = { count: 0, firstAt: now, lastAt: now, expiresAt: now + ttlMs };
			this.entries.set(key, e);
		}
		e.count++;
		e.lastAt = now;
		if (slide) e.expiresAt = now + ttlMs;
		return { ...e };
	}

	async get(key: string, now: number): Promise<CounterState | null> {
		const e = this.entries.get(key);
		if (!e || e.expiresAt <= now) return null;
		return { ...e };
	}

	async clear(key: string): Promise<void> {
		this.entries.delete(key);
	}

	/** Drop expired entries now and then so idle keys do not pile up. */
	private sweep(now: number) {
		if (now < this.sweepAt) return;
		this.sweepAt = now + 10_000;
		for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
	}
}

// KEYS[1]=key ARGV: now, ttlMs, slide(0|1). Hash fields c (count), f (first), l (last).
const HIT_SCRIPT = `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
if c == 1 then
  redis.call('HSET', KEYS[1], 'f', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
elseif ARGV[3] == '1' then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
redis.call('HSET', KEYS[1], 'l', now)
local f = redis.call('HGET', KEYS[1], 'f')
return {c, f, redis.call('PTTL', KEYS[1])}
`;

export class RedisCounterStore implements CounterStore {
	constructor(private readonly redis: Redis, private readonly prefix: string) {
		redis.defineCommand("lockersCounterHit", { numberOfKeys: 1, lua: HIT_SCRIPT });
	}

	async hit(key: string, ttlMs: number, now: number, slide = false): Promise<CounterState> {
		const [count, first, pttl] = (await (this.redis as any).lockersCounterHit(
			this.prefix + key, now, ttlMs, slide ? "1" : "0",
		)) as [number, string, number];
		return { count, firstAt: Number(first), lastAt: now, expiresAt: now + Math.max(0, pttl) };
	}

	async get(key: string, now: number): Promise<CounterState | null> {
		const k = this.prefix + key;
		const [[, h], [, pttl]] = (await this.redis.multi().hgetall(k).pttl(k).exec()) as [
			[unknown, Record<string, string>],
			[unknown, number],
		];
		if (!h || !h.c || pttl <= 0) return null;
		return { count: Number(h.c), firstAt: Number(h.f), lastAt: Number(h.l), expiresAt: now + pttl };
	}

	async clear(key: string): Promise<void> {
		await this.redis.del(this.prefix + key);
	}
}

/**
 * The store a service should count in: Redis when `redisUrl` is set (shared by
 * every replica), else memory. `close` releases the Redis connection.
 */
export function createCounterStore(opts: { redisUrl?: string; namespace: string }, clientName: string): { store: CounterStore; close: () => Promise<unknown> } {
	if (!opts.redisUrl) return { store: new MemoryCounterStore(), close: async () => undefined };
	const redis = createRedis(opts.redisUrl, clientName);
	return { store: new RedisCounterStore(redis, `${opts.namespace}:`), close: () => redis.quit() };
}
