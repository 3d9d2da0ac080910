/**
 * Broker options, built from the typed configuration.
 * Embedded (no TRANSPORTER): one process, memory cacher. Distributed: NATS,
 * and Redis as cacher when REDIS_URL is set.
 */
import os from "node:os";
import type { BrokerOptions } from "moleculer";
import type { Config } from "./config";
import { AccessMiddleware } from "./middlewares/access.middleware";
import { StrictValidator } from "./lib/strict-validator";
import { createRemoteTimeoutMiddleware } from "./middlewares/remote-timeout.middleware";
import { BreakerScopeMiddleware } from "./middlewares/breaker-scope.middleware";
import { createPrometheusReporter } from "./lib/prometheus-reporter";
import { isMeshFailure } from "./lib/mesh-errors";
import { ResilientRedisCacher } from "./lib/resilient-cacher";

export function createBrokerOptions(config: Config, overrides: Partial<BrokerOptions> = {}): BrokerOptions {
	const role = config.services.length === 1 ? config.services[0] : config.transporter ? config.services.join("+") : "all";
	return {
		namespace: config.namespace,
		nodeID: config.nodeID ?? `${os.hostname()}-${role}-${process.pid}`,

		logger: {
			type: "Console",
			options: {
				level: config.logLevel,
				// Structured JSON lines in production (for log shippers), readable lines in development.
				formatter: config.env === "production" ? "json" : "short",
				colors: config.env !== "production",
				moduleColors: false,
			},
		},

		transporter: config.transporter ? { type: "NATS", options: { url: config.transporter } } : null,
		serializer: "JSON",

		cacher: config.redisUrl
			? new ResilientRedisCacher({ url: config.redisUrl, prefix: `${config.namespace}-cache`, ttl: 300, name: "cacher" })
			: { type: "MemoryLRU", options: { max: 100_000, ttl: 300 } },

		requestTimeout: config.requestTimeoutMs,
		// Never re-send calls on their own: some actions have physical side effects (door opening).
		retryPolicy: { enabled: false },
		circuitBreaker: {
			enabled: true,
			threshold: 0.5,
			minRequestCount: 5,
			windowTime: 20,
			halfOpenTime: 5_000,
			// Failures of the mesh and of services only, never a domain answer about one cabinet or door.
			check: isMeshFailure,
		},
		bulkhead: { enabled: false },
		registry: { strategy: "RoundRobin", preferLocal: true },
		// A node that died without a goodbye is taken out of the registry within ~8 s; the doors
		// lease (DOOR_LEASE_TTL_MS) bounds when its cabinets move, door-client routes around it sooner.
		heartbeatInterval: 2,
		heartbeatTimeout: 8,
		contextParamsCloning: false,
		tracking: { enabled: true, shutdownTimeout: 10_000 },

		validator: new StrictValidator(),

		metrics: {
			enabled: config.metrics,
			reporter: [createPrometheusReporter({ port: config.metricsPort, host: config.metricsHost })],
		},
		tracing: config.tracingExporter
			? { enabled: true, exporter: config.tracingExporter as "Console", sampling: { rate: 1 } }
			: { enabled: false },

		middlewares: [AccessMiddleware, createRemoteTimeoutMiddleware(), BreakerScopeMiddleware],
		...overrides,
	};
}
