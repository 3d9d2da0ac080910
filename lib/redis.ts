/**
 * Redis clients that fail fast instead of hanging or crashing the process when
 * Redis is down or paused: a command that gets no answer within
 * `commandTimeoutMs` fails (ioredis would wait forever on a paused server),
 * nothing queues while disconnected beyond a short retry, and every client has
 * an error listener (an unhandled 'error' event is a crash, or at best an
 * unstructured line per reconnect attempt).
 */
import IORedis, { type Redis, type RedisOptions } from "ioredis";
import { LogLimiter } from "./log-limiter";

export interface RedisClientOptions {
	/** A command without an answer by then fails. */
	commandTimeoutMs?: number;
	autoPipelining?: boolean;
	/** Where connection errors go (rate-limited: one line per client per 30 s). */
	logger?: { warn(...args: unknown[]): void };
}

const errorLog = new LogLimiter({ intervalMs: 30_000, maxKeys: 100 });

/** ioredis options from a redis:// or rediss:// URL (for code that takes an options object, like Moleculer's cacher). */
export function redisOptionsFromUrl(url: string): RedisOptions {
	const u = new URL(url);
	const db = Number(u.pathname.replace(/^\//, "") || 0);
	return {
		host: u.hostname,
		port: Number(u.port || 6379),
		...(u.username ? { username: decodeURIComponent(u.username) } : {}),
		...(u.password ? { password: decodeURIComponent(u.password) } : {}),
		...(Number.isInteger(db) ? { db } : {}),
		...(u.protocol === "rediss:" ? { tls: {} } : {}),
	};
}

/** The settings every client of the platform uses (see above). */
export function failFastOptions(name: string, opts: RedisClientOptions = {}): RedisOptions {
	return {
		connectionName: name,
		commandTimeout: opts.commandTimeoutMs ?? 1000,
		maxRetriesPerRequest: 1,
		enableOfflineQueue: true,
		connectTimeout: 2000,
		retryStrategy: times => Math.min(times * 200, 2000),
		enableAutoPipelining: opts.autoPipelining ?? false,
	};
}

export function watchRedisErrors(client: Redis, name: string, logger?: RedisClientOptions["logger"]): Redis {
	client.on("error", (err: Error) => {
		const note = errorLog.note(name);
		if (note) (logger ?? console).warn(`Redis (${name}): ${err.message}${note.suppressed ? ` (${note.suppressed} more since the last line)` : ""}`);
	});
	return client;
}

export function createRedis(url: string, name: string, opts: RedisClientOptions = {}): Redis {
	return watchRedisErrors(new IORedis(url, failFastOptions(name, opts)), name, opts.logger);
}
