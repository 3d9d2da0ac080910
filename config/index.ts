/**
 * Typed configuration, read and validated once from the environment.
 *
 * Every other module takes its slice of `Config` as an argument; nothing else
 * reads `process.env`. Development defaults are safe to run locally; in
 * production (`NODE_ENV=production`) a default secret is refused.
 */
import path from "node:path";

export const ALL_SERVICES = ["api", "users", "merchants", "geo", "hardware", "doors", "orders", "billing", "alerts"] as const;
export type ServiceName = (typeof ALL_SERVICES)[number];

export const DEV_JWT_SECRET = "dev-only-jwt-secret-do-not-use-in-production";
export const DEV_SANDBOX_PAY_SECRET = "dev-only-sandbox-pay-secret";
export const DEV_CABINET_SECRET_KEY = "dev-only-cabinet-secret-key-do-not-use-in-production";
export const DEV_MQTT_PASSWORD = "dev-only-mqtt-platform-password";
export const DEV_MQTT_HOOK_SECRET = "dev-only-mqtt-hook-secret";

export interface RateLimitConfig {
	/** Requests per window per client IP, all routes together. */
	ipPerWindow: number;
	/** Requests per window per signed-in user. */
	userPerWindow: number;
	/** Requests per window per IP on the credential routes (register, login, refresh). */
	authPerWindow: number;
	windowMs: number;
}

export interface LoginThrottleConfig {
	/** Failures for one account before each further attempt must wait. */
	slowAfter: number;
	/** Failures for one account before it is locked for `lockMs`. */
	lockAfter: number;
	/** Failures from one IP (any account) before that IP is locked. */
	ipLockAfter: number;
	/** Failures are forgotten this long after the last one; also the lock length. */
	lockMs: number;
	/** Upper bound of the wait between attempts while slowed down. */
	maxDelayMs: number;
}

export type AlertSeverity = "P1" | "P2" | "P3";

/** One DingTalk custom robot (a group's webhook). */
export interface RobotConfig {
	name: string;
	url: string;
	secret?: string;
	/** A word every message must contain (the robot's keyword security setting). */
	keyword?: string;
	/** Only these severities (all when unset). */
	severities?: AlertSeverity[];
	/** Only alerts of this merchant (all when unset). */
	merchantId?: string;
	/** Where its messages go while it is paused (130101) or unusable. */
	fallback?: string;
	/** Phones @-mentioned on P1 alerts. */
	atMobiles?: string[];
}

export interface AlertTiming {
	groupWaitMs: number;
	groupIntervalMs: number;
	repeatIntervalMs: number;
}

export interface AlertsConfig {
	robots: RobotConfig[];
	timing: Record<AlertSeverity, AlertTiming>;
	/** How often rules are evaluated and queues worked. */
	tickMs: number;
	/** A robot's rate: at most `perWindow` messages per `windowMs` (DingTalk: 20 per minute). */
	rate: { perWindow: number; windowMs: number };
	/** How long a robot rests after DingTalk answered 130101 (DingTalk blocks it 10 minutes). */
	pauseMs: number;
	/** How long a DingTalk request may take. */
	sendTimeoutMs: number;
	thresholds: {
		/** A condition (cabinet offline, …) must be gone this long before its alert resolves. */
		clearForMs: number;
		/** Alerts raised by one event resolve after this long without a repeat. */
		eventResolveAfterMs: number;
		/** Share of a point's cabinets offline that makes it a point alert (it mutes the cabinets' own). */
		pointOfflineRatio: number;
		unlockWindowMs: number;
		unlockFailureRatio: number;
		unlockMinAttemptsCabinet: number;
		unlockMinAttemptsFleet: number;
		/** Rejected payment notifications in the unlock window that make a burst. */
		badSignatureBurst: number;
		/** A payment pending longer than this is an alert (billing's sweeper says so). */
		paymentPendingMs: number;
		/** An order in a passing state (depositing, picking up) longer than this is an alert. */
		orderStuckMs: number;
		/** How often billing reconciles today's and yesterday's payments against the ledger. */
		reconcileEveryMs: number;
	};
}

export interface MqttLimits {
	/** Largest MQTT packet accepted (PROTOCOL.md payloads are small); a bigger one closes the connection. */
	maxPacketBytes: number;
	/** A connection that has not completed CONNECT by then is closed. */
	connectTimeoutMs: number;
	/** Connections from one address that have not authenticated yet. */
	maxPendingPerAddress: number;
	/** Connections from one address in all (cabinets behind one NAT share an address). */
	maxConnectionsPerAddress: number;
}

export interface Config {
	env: "development" | "production" | "test";
	nodeID?: string;
	namespace: string;
	logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
	port: number;
	mqttPort: number;
	dataDir: string;
	/** Unset = embedded (no transporter, all services in this process). */
	transporter?: string;
	services: ServiceName[];
	mongoUri?: string;
	redisUrl?: string;
	mqttUrl?: string;
	requestTimeoutMs: number;
	metrics: boolean;
	/** Port of the node's own Prometheus endpoint (0 = any free port). */
	metricsPort: number;
	/** Address the metrics port binds to (127.0.0.1 unless a scraper elsewhere must reach it). */
	metricsHost: string;
	/**
	 * Bearer token that opens `/metrics` on the API port. Without it the API port serves
	 * metrics only outside production; in production they are on the metrics port alone.
	 */
	metricsToken?: string;
	/** Moleculer tracing exporter (e.g. "Console", "Jaeger"); unset = tracing off. */
	tracingExporter?: string;
	/** Health endpoint for nodes that do not run the gateway (docker health checks); unset = none. */
	healthPort?: number;
	heartbeatSec: number;
	reservationTtlSec: number;
	demoSeed: boolean;
	auth: {
		jwtSecret: string;
		accessTtlSec: number;
		refreshTtlSec: number;
		issuer: string;
	};
	admin: { username?: string; password?: string };
	sandboxPaySecret: string;
	payments: {
		/** A payment still pending this long is asked about at its provider (its notification may never come). */
		queryAfterMs: number;
		/** A payment never paid is given up (failed) after this long. */
		expireAfterMs: number;
		sweepEveryMs: number;
		/** A day is settled (its statement stored) this long after it ended. */
		settleDelayMs: number;
	};
	mqtt: {
		/** The platform's own MQTT account (full access to lockers/#): hardware bridge and door actors. */
		username: string;
		password: string;
		/** Shared secret EMQX sends (header x-hook-secret) to the authentication/authorization hooks. */
		hookSecret: string;
		/** Shared-subscription group of the hardware nodes on an external broker. */
		shareGroup: string;
		/** EMQX's REST API (kicking a cabinet whose credentials rotated); unset = not used. */
		emqxApi?: { url: string; key: string; secret: string };
		/** Limits of the embedded broker, which shares its process with the API. */
		limits: MqttLimits;
	};
	doors: {
		/** How long a door command may take to be acked (also its notAfter). */
		commandTimeoutMs: number;
		/** A door open longer than this raises "door left open". */
		openTooLongSec: number;
		/** Ownership lease of a cabinet (a crashed owner's cabinets move after at most this). */
		leaseTtlMs: number;
		mailboxLimit: number;
		/**
		 * How long a caller waits for a door action that sends a command: the door's own
		 * command timeout decides the outcome (504 DOOR_TIMEOUT), so callers wait longer — also
		 * for a dead owner's lease to run out after a failover. Derived, not set.
		 */
		callTimeoutMs: number;
	};
	/** Derives every cabinet's MQTT/signing secret (see services/merchants/credentials.ts): merchants and doors nodes need the same. */
	cabinetSecretKey: string;
	alerts: AlertsConfig;
	http: {
		corsOrigins: string[] | "*";
		/** Largest request body in bytes (BODY_LIMIT, e.g. 64kb), also after decompression. */
		bodyLimitBytes: number;
		trustProxy: boolean;
	};
	rateLimit: RateLimitConfig;
	/** GET /events (server-sent events): what one gateway node holds for its streams. */
	live: {
		/** Open streams per user on one node, and on the node altogether. */
		maxStreamsPerUser: number;
		maxStreams: number;
		/** A slow reader's queue (events and bytes) before it is told `overflow` and closed. */
		queueEvents: number;
		queueBytes: number;
		heartbeatMs: number;
		/** The node stops receiving door and cabinet events this long after its last stream closed. */
		lingerMs: number;
	};
	loginThrottle: LoginThrottleConfig;
	/** Test only (lib/crash-points.ts): points where the process kills itself. */
	crashPoints: string[];
}

export class ConfigError extends Error {
	constructor(public readonly problems: string[]) {
		super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
		this.name = "ConfigError";
	}
}

type Env = Record<string, string | undefined>;

/** Reads the environment into a `Config`, or throws a `ConfigError` listing every problem at once. */
/** EX_CONFIG of sysexits.h: the exit code for a configuration error. */
export const EXIT_CONFIG = 78;

/** For command-line entry points: the configuration, or every problem printed and exit 78. */
export function loadConfigOrExit(env: Env): Config {
	try {
		return loadConfig(env);
	} catch (err) {
		if (err instanceof ConfigError) {
			console.error(err.message);
			process.exit(EXIT_CONFIG);
		}
		throw err;
	}
}

export function loadConfig(env: Env = process.env): Config {
	const problems: string[] = [];
	const str = (name: string): string | undefined => {
		const v = env[name];
		return v === undefined || v.trim() === "" ? undefined : v.trim();
	};
	const int = (name: string, def: number, min: number, max: number): number => {
		const raw = str(name);
		if (raw === undefined) return def;
		const n = Number(raw);
		if (!Number.isInteger(n) || n < min || n > max) {
			problems.push(`${name} must be an integer between ${min} and ${max} (got "${raw}")`);
			return def;
		}
		return n;
	};
	const byteSize = (name: string, def: number, min: number, max: number): number => {
		const raw = str(name);
		if (raw === undefined) return def;
		const m = /^(\d+)\s*(b|kb|mb)?$/i.exec(raw);
		const n = m ? Number(m[1]) * { b: 1, kb: 1024, mb: 1024 * 1024 }[(m[2] ?? "b").toLowerCase() as "b" | "kb" | "mb"] : NaN;
		if (!(n >= min && n <= max)) {
			problems.push(`${name} must be a size between ${min} and ${max} bytes, like 64kb (got "${raw}")`);
			return def;
		}
		return n;
	};
	// DINGTALK_ROBOTS: a JSON list of robots; DINGTALK_WEBHOOK_URL/DINGTALK_SECRET add one named "default".
	const robots = (): RobotConfig[] => {
		const list: RobotConfig[] = [];
		const raw = str("DINGTALK_ROBOTS");
		if (raw !== undefined) {
			try {
				const parsed = JSON.parse(raw) as unknown;
				if (!Array.isArray(parsed)) throw new Error("not a list");
				const text = (v: unknown) => typeof v === "string" && v.length > 0 && v.length <= 2000;
				for (const r of parsed as Record<string, unknown>[]) {
					if (!text(r?.name) || !text(r?.url) || !/^https?:\/\//.test(r.url as string)) throw new Error("each robot needs a name and an http(s) url");
					for (const k of ["secret", "keyword", "merchantId", "fallback"]) if (r[k] !== undefined && !text(r[k])) throw new Error(`robot ${r.name}: ${k} must be a string`);
					if (r.severities !== undefined && (!Array.isArray(r.severities) || !r.severities.every(x => x === "P1" || x === "P2" || x === "P3"))) throw new Error(`robot ${r.name}: severities must be a list of P1, P2, P3`);
					if (r.atMobiles !== undefined && (!Array.isArray(r.atMobiles) || !r.atMobiles.every(m => typeof m === "string" && /^\+?[0-9-]{5,20}$/.test(m)))) throw new Error(`robot ${r.name}: atMobiles must be a list of phone numbers`);
					if (list.some(o => o.name === r.name)) throw new Error(`robot ${r.name} is named twice`);
					if (r.fallback === r.name) throw new Error(`robot ${r.name} cannot be its own fallback`);
					list.push(r as unknown as RobotConfig);
				}
			} catch (err) {
				problems.push(`DINGTALK_ROBOTS must be a JSON list of {name, url, secret?, keyword?, severities?, merchantId?, fallback?, atMobiles?} (${(err as Error).message})`);
			}
		}
		const single = url("DINGTALK_WEBHOOK_URL", ["https:", "http:"]);
		if (single && !list.some(r => r.name === "default")) list.push({ name: "default", url: single, secret: str("DINGTALK_SECRET"), keyword: str("DINGTALK_KEYWORD") });
		for (const r of list) if (r.fallback && !list.some(o => o.name === r.fallback)) problems.push(`DingTalk robot ${r.name}: fallback ${r.fallback} is not a configured robot`);
		return list;
	};
	// Alertmanager-like timings per severity; ALERTS_TIMING (JSON) overrides any of them.
	const timing = (): Record<AlertSeverity, AlertTiming> => {
		const t: Record<AlertSeverity, AlertTiming> = {
			P1: { groupWaitMs: 5_000, groupIntervalMs: 60_000, repeatIntervalMs: 30 * 60_000 },
			P2: { groupWaitMs: 30_000, groupIntervalMs: 5 * 60_000, repeatIntervalMs: 4 * 3600_000 },
			P3: { groupWaitMs: 60_000, groupIntervalMs: 10 * 60_000, repeatIntervalMs: 12 * 3600_000 },
		};
		const raw = str("ALERTS_TIMING");
		if (raw !== undefined) {
			try {
				const o = JSON.parse(raw) as Partial<Record<AlertSeverity, Partial<AlertTiming>>>;
				for (const sev of ["P1", "P2", "P3"] as const) {
					for (const [k, v] of Object.entries(o?.[sev] ?? {})) {
						if (!(k in t[sev]) || !Number.isInteger(v) || (v as number) < 0 || (v as number) > 30 * 86_400_000) throw new Error(`${sev}.${k}`);
					}
					t[sev] = { ...t[sev], ...(o?.[sev] ?? {}) };
				}
			} catch {
				problems.push("ALERTS_TIMING must be JSON like {\"P1\":{\"groupWaitMs\":5000}} (groupWaitMs, groupIntervalMs, repeatIntervalMs in ms)");
			}
		}
		return t;
	};
	const bool = (name: string, def: boolean): boolean => {
		const raw = str(name);
		if (raw === undefined) return def;
		if (/^(1|true|yes|on)$/i.test(raw)) return true;
		if (/^(0|false|no|off)$/i.test(raw)) return false;
		problems.push(`${name} must be true or false (got "${raw}")`);
		return def;
	};
	const url = (name: string, protocols: string[]): string | undefined => {
		const raw = str(name);
		if (raw === undefined) return undefined;
		for (const part of raw.split(",")) {
			try {
				const u = new URL(part);
				if (!protocols.includes(u.protocol)) throw new Error("protocol");
			} catch {
				problems.push(`${name} must be a URL with one of ${protocols.join(" ")} (got "${raw}")`);
				return undefined;
			}
		}
		return raw;
	};

	const nodeEnv = str("NODE_ENV") ?? "development";
	if (!["development", "production", "test"].includes(nodeEnv)) {
		problems.push(`NODE_ENV must be development, production or test (got "${nodeEnv}")`);
	}
	const production = nodeEnv === "production";

	const logLevel = (str("LOG_LEVEL") ?? (nodeEnv === "test" ? "warn" : "info")) as Config["logLevel"];
	if (!["fatal", "error", "warn", "info", "debug", "trace"].includes(logLevel)) {
		problems.push(`LOG_LEVEL must be one of fatal error warn info debug trace (got "${logLevel}")`);
	}

	// The mesh is NATS (several servers may be listed, comma-separated).
	const transporter = url("TRANSPORTER", ["nats:"]);
	let services: ServiceName[] = [...ALL_SERVICES];
	const servicesRaw = str("SERVICES");
	if (servicesRaw !== undefined) {
		const wanted = servicesRaw.split(",").map(s => s.trim()).filter(Boolean);
		const unknown = wanted.filter(s => !(ALL_SERVICES as readonly string[]).includes(s));
		if (unknown.length) problems.push(`SERVICES has unknown service(s): ${unknown.join(", ")} (known: ${ALL_SERVICES.join(", ")})`);
		if (!wanted.length) problems.push("SERVICES is empty");
		services = wanted.filter((s): s is ServiceName => (ALL_SERVICES as readonly string[]).includes(s));
		if (!transporter && services.length < ALL_SERVICES.length) {
			problems.push("SERVICES selects a subset of services, which needs TRANSPORTER for the rest of the mesh");
		}
	}

	const jwtSecret = str("JWT_SECRET") ?? DEV_JWT_SECRET;
	if (production) {
		if (jwtSecret === DEV_JWT_SECRET) problems.push("JWT_SECRET must be set in production");
		else if (jwtSecret.length < 32) problems.push("JWT_SECRET must be at least 32 characters in production");
	}
	const sandboxPaySecret = str("SANDBOX_PAY_SECRET") ?? DEV_SANDBOX_PAY_SECRET;
	if (production && sandboxPaySecret === DEV_SANDBOX_PAY_SECRET) problems.push("SANDBOX_PAY_SECRET must be set in production");

	const cabinetSecretKey = str("CABINET_SECRET_KEY") ?? DEV_CABINET_SECRET_KEY;
	if (production) {
		if (cabinetSecretKey === DEV_CABINET_SECRET_KEY) problems.push("CABINET_SECRET_KEY must be set in production");
		else if (cabinetSecretKey.length < 32) problems.push("CABINET_SECRET_KEY must be at least 32 characters in production");
	}

	const mqttPassword = str("MQTT_PASSWORD") ?? DEV_MQTT_PASSWORD;
	// Used only with a key and secret (docker-compose always names the URL; the key is optional).
	const emqxApiUrl = url("EMQX_API_URL", ["http:", "https:"]);
	const mqttHookSecret = str("MQTT_HOOK_SECRET") ?? DEV_MQTT_HOOK_SECRET;
	if (production && mqttPassword === DEV_MQTT_PASSWORD) problems.push("MQTT_PASSWORD must be set in production");
	if (production && mqttHookSecret === DEV_MQTT_HOOK_SECRET) problems.push("MQTT_HOOK_SECRET must be set in production");

	const adminUsername = str("ADMIN_USERNAME");
	const adminPassword = str("ADMIN_PASSWORD");
	if (adminPassword !== undefined && adminPassword.length < 10) problems.push("ADMIN_PASSWORD must be at least 10 characters");
	if (production && adminPassword === undefined) problems.push("ADMIN_PASSWORD must be set in production");
	if (production && adminPassword !== undefined && /^(admin|password|changeme)/i.test(adminPassword)) {
		problems.push("ADMIN_PASSWORD is a well-known default; choose another in production");
	}

	const corsRaw = str("CORS_ORIGINS") ?? (production ? "" : "*");
	const corsOrigins = corsRaw === "*" ? "*" : corsRaw.split(",").map(s => s.trim()).filter(Boolean);

	const config: Config = {
		env: nodeEnv as Config["env"],
		nodeID: str("NODE_ID"),
		namespace: str("NAMESPACE") ?? "lockers",
		logLevel,
		port: int("PORT", 3000, 0, 65535),
		mqttPort: int("MQTT_PORT", 1883, 0, 65535),
		dataDir: path.resolve(str("DATA_DIR") ?? "./data"),
		transporter,
		services,
		mongoUri: url("MONGO_URI", ["mongodb:", "mongodb+srv:"]),
		redisUrl: url("REDIS_URL", ["redis:", "rediss:"]),
		mqttUrl: url("MQTT_URL", ["mqtt:", "mqtts:", "ws:", "wss:", "tcp:"]),
		requestTimeoutMs: int("REQUEST_TIMEOUT_MS", 5000, 100, 120000),
		metrics: bool("METRICS", true),
		metricsPort: int("METRICS_PORT", 0, 0, 65535),
		metricsHost: str("METRICS_HOST") ?? "127.0.0.1",
		metricsToken: str("METRICS_TOKEN"),
		tracingExporter: str("TRACING_EXPORTER"),
		healthPort: str("HEALTH_PORT") === undefined ? undefined : int("HEALTH_PORT", 3001, 1, 65535),
		heartbeatSec: int("HEARTBEAT_SEC", 30, 1, 3600),
		reservationTtlSec: int("RESERVATION_TTL_SEC", 900, 10, 86400),
		demoSeed: bool("DEMO_SEED", true),
		auth: {
			jwtSecret,
			accessTtlSec: int("ACCESS_TOKEN_TTL_SEC", 15 * 60, 10, 24 * 3600),
			refreshTtlSec: int("REFRESH_TOKEN_TTL_SEC", 7 * 24 * 3600, 60, 90 * 24 * 3600),
			issuer: "locker-platform",
		},
		admin: { username: adminUsername, password: adminPassword },
		sandboxPaySecret,
		payments: {
			queryAfterMs: int("PAYMENT_QUERY_AFTER_MS", 120_000, 1000, 86_400_000),
			expireAfterMs: int("PAYMENT_EXPIRE_AFTER_MS", 30 * 60_000, 10_000, 7 * 86_400_000),
			sweepEveryMs: int("PAYMENT_SWEEP_MS", 30_000, 200, 3_600_000),
			settleDelayMs: int("SETTLE_DELAY_MS", 3_600_000, 0, 7 * 86_400_000),
		},
		cabinetSecretKey,
		mqtt: {
			username: str("MQTT_USERNAME") ?? "platform", password: mqttPassword, hookSecret: mqttHookSecret, shareGroup: str("MQTT_SHARE_GROUP") ?? "hardware",
			emqxApi: emqxApiUrl && str("EMQX_API_KEY") && str("EMQX_API_SECRET") ? { url: emqxApiUrl, key: str("EMQX_API_KEY")!, secret: str("EMQX_API_SECRET")! } : undefined,
			limits: {
				maxPacketBytes: int("MQTT_MAX_PACKET_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
				connectTimeoutMs: int("MQTT_CONNECT_TIMEOUT_MS", 5000, 500, 60_000),
				maxPendingPerAddress: int("MQTT_MAX_PENDING_PER_ADDRESS", 16, 1, 10_000),
				maxConnectionsPerAddress: int("MQTT_MAX_CONNECTIONS_PER_ADDRESS", 5000, 1, 1_000_000),
			},
		},
		doors: {
			commandTimeoutMs: int("DOOR_COMMAND_TIMEOUT_MS", 5000, 200, 60_000),
			openTooLongSec: int("DOOR_OPEN_TOO_LONG_SEC", 120, 5, 86_400),
			leaseTtlMs: int("DOOR_LEASE_TTL_MS", 6_000, 1000, 120_000),
			mailboxLimit: int("DOOR_MAILBOX_LIMIT", 64, 1, 100_000),
			callTimeoutMs: 0,
		},
		alerts: {
			robots: robots(),
			timing: timing(),
			tickMs: int("ALERTS_TICK_MS", 1000, 50, 60_000),
			rate: { perWindow: int("DINGTALK_RATE_PER_WINDOW", 20, 1, 1000), windowMs: int("DINGTALK_RATE_WINDOW_MS", 60_000, 100, 3_600_000) },
			pauseMs: int("DINGTALK_PAUSE_MS", 600_000, 100, 86_400_000),
			sendTimeoutMs: int("DINGTALK_TIMEOUT_MS", 5000, 100, 60_000),
			thresholds: {
				clearForMs: int("ALERT_CLEAR_FOR_MS", 30_000, 0, 86_400_000),
				eventResolveAfterMs: int("ALERT_EVENT_RESOLVE_AFTER_MS", 30 * 60_000, 1000, 7 * 86_400_000),
				pointOfflineRatio: 0.5,
				unlockWindowMs: int("ALERT_UNLOCK_WINDOW_MS", 5 * 60_000, 1000, 86_400_000),
				unlockFailureRatio: 0.3,
				unlockMinAttemptsCabinet: int("ALERT_UNLOCK_MIN_CABINET", 5, 1, 100_000),
				unlockMinAttemptsFleet: int("ALERT_UNLOCK_MIN_FLEET", 20, 1, 1_000_000),
				badSignatureBurst: int("ALERT_BAD_SIGNATURE_BURST", 5, 1, 100_000),
				paymentPendingMs: int("ALERT_PAYMENT_PENDING_MS", 15 * 60_000, 1000, 7 * 86_400_000),
				orderStuckMs: int("ALERT_ORDER_STUCK_MS", 30 * 60_000, 1000, 7 * 86_400_000),
				reconcileEveryMs: int("RECONCILE_EVERY_MS", 15 * 60_000, 1000, 86_400_000),
			},
		},
		http: {
			corsOrigins,
			bodyLimitBytes: byteSize("BODY_LIMIT", 64 * 1024, 1024, 16 * 1024 * 1024),
			trustProxy: bool("TRUST_PROXY", false),
		},
		rateLimit: {
			ipPerWindow: int("RATE_LIMIT_IP", 1200, 1, 1e9),
			userPerWindow: int("RATE_LIMIT_USER", 600, 1, 1e9),
			authPerWindow: int("RATE_LIMIT_AUTH", 30, 1, 1e9),
			windowMs: int("RATE_LIMIT_WINDOW_MS", 60_000, 1000, 3_600_000),
		},
		live: {
			maxStreamsPerUser: int("LIVE_MAX_STREAMS_PER_USER", 5, 1, 1000),
			maxStreams: int("LIVE_MAX_STREAMS", 2000, 1, 1_000_000),
			queueEvents: int("LIVE_QUEUE_EVENTS", 256, 1, 100_000),
			queueBytes: byteSize("LIVE_QUEUE_BYTES", 256 * 1024, 1024, 64 * 1024 * 1024),
			heartbeatMs: int("LIVE_HEARTBEAT_MS", 15_000, 100, 600_000),
			lingerMs: int("LIVE_LINGER_MS", 30_000, 0, 3_600_000),
		},
		crashPoints: (str("CRASH_POINTS") ?? "").split(",").map(s => s.trim()).filter(Boolean),
		loginThrottle: {
			slowAfter: int("LOGIN_SLOW_AFTER", 5, 1, 1000),
			lockAfter: int("LOGIN_LOCK_AFTER", 10, 1, 1000),
			ipLockAfter: int("LOGIN_IP_LOCK_AFTER", 50, 1, 100000),
			lockMs: int("LOGIN_LOCK_MS", 15 * 60_000, 1000, 24 * 3600_000),
			maxDelayMs: int("LOGIN_MAX_DELAY_MS", 60_000, 0, 3600_000),
		},
	};
	config.doors.callTimeoutMs = config.doors.commandTimeoutMs + Math.ceil(config.doors.leaseTtlMs / 2) + 1000;
	if (production && config.crashPoints.length) problems.push("CRASH_POINTS is for tests and is refused in production");
	if (production && config.metricsToken !== undefined && config.metricsToken.length < 32) {
		problems.push("METRICS_TOKEN must be at least 32 characters in production");
	}
	if (config.loginThrottle.lockAfter < config.loginThrottle.slowAfter) {
		problems.push("LOGIN_LOCK_AFTER must be at least LOGIN_SLOW_AFTER");
	}
	if (problems.length) throw new ConfigError(problems);
	return config;
}
