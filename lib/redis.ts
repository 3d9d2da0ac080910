import IORedis, { type Redis } from "ioredis";

/** One ioredis client with settings that fail fast instead of queueing forever when Redis is down. */
export function createRedis(url: string, name: string): Redis {
	return new IORedis(url, {
		connectionName: name,
		maxRetriesPerRequest: 2,
		enableOfflineQueue: true,
		connectTimeout: 2000,
		retryStrategy: times => Math.min(times * 200, 2000),
	});
}
