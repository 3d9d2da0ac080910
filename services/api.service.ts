/**
 * api: the HTTP edge (moleculer-web).
 *
 * Routes come from the actions' own `rest` declarations (see api/routes.ts).
 * For each request the gateway: sets the request id, checks the per-IP rate
 * limit, verifies the access token (and that its session was not revoked),
 * checks the action's declared `auth` rule and the per-user rate limit, and
 * forwards the call with `ctx.meta.user`. Errors leave in API.md's shape.
 */
import crypto from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { Errors, type Context, type ServiceSchema, type ServiceSettingSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { Config } from "../config";
import { createLimiterFactory } from "../lib/rate-limits";
import { checkReadiness } from "../lib/readiness";
import { checkAccess } from "../middlewares/access";
import type { AppMeta, AuthUser } from "../types/auth";
import { ErrorTypes, rateLimited, unauthorized } from "../types/errors";
import { TokenService } from "../lib/access-tokens";
import type { SessionRevokedEvent } from "../types/events";
import { collectRoutes, type RouteDef } from "./api/routes";
import { buildOpenApi } from "./api/openapi";
import { DOCS_PAGE, DOCS_PAGE_CSP } from "./api/docs-page";
import { RateLimits, type Budget, type LimitResult } from "./api/rate-limit";
import { toErrorBody } from "./api/errors";
import { DEFAULT_JSON_LIMITS, jsonBody, type BodyRequest } from "./api/json-body";
import { ADMIN_CSP, loadAdminFiles } from "./api/admin-files";
import { createLiveMixin, LIVE_OPENAPI_OPERATION, type LiveStreams } from "./api/live-stream";
import { API_PREFIX } from "../lib/created";
import { waitForServicesWhileRunning } from "../lib/wait-for-services";

export { API_PREFIX };

type Req = IncomingMessage & BodyRequest & {
	$ctx?: Context<unknown, AppMeta>;
	$alias?: { action?: string };
	$route?: unknown;
	$routeDef?: RouteDef;
	$limitShown?: LimitResult;
	$params?: Record<string, unknown>;
};
type Res = ServerResponse;

interface Methods {
	authenticate(ctx: Context<unknown, AppMeta>, route: unknown, req: Req): Promise<AuthUser | null>;
	authorize(ctx: Context<unknown, AppMeta>, route: unknown, req: Req, res: Res): Promise<void>;
	clientIp(req: Req): string;
	applyLimit(res: Res, budget: Budget, key: string, what: string): Promise<LimitResult>;
	showLimit(res: Res, r: LimitResult): void;
	isRevoked(sid: string): Promise<boolean>;
	markRevoked(ev: SessionRevokedEvent): Promise<void>;
	sendJson(req: Req, res: Res, status: number, body: unknown): void;
	errorHandler(req: Req, res: Res, err: unknown): void;
	openLiveStream(req: Req, res: Res): Promise<void>;
}

interface Vars {
	tokens: TokenService;
	limits: RateLimits;
	closeLimiter: () => Promise<unknown>;
	routeByAction: Map<string, RouteDef>;
	openapi: unknown;
	/** sid → until (ms): sessions whose access tokens are refused. */
	revoked: Map<string, number>;
	/** GET /events (api/live-stream.ts). */
	live: LiveStreams;
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any; settings: any };

const SECURITY_HEADERS: Record<string, string> = {
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options": "DENY",
	"Referrer-Policy": "no-referrer",
	"Cross-Origin-Resource-Policy": "same-site",
	"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
	"Cache-Control": "no-store",
};

const REVOKED_KEY = "auth.revoked:";

/** API.md: an Idempotency-Key is at most 255 characters (visible ASCII here). */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** A client's X-Request-Id is echoed in headers and logs: take it only if it is short and plain. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The event stream's request lives as long as its reader: a stop does not wait for it (it ends the stream). */
const EVENTS_URL = new RegExp(`^${API_PREFIX}/events(\\?|$)`);

/** The answer when even the error path fails: fixed bytes, nothing from the request. */
const LAST_RESORT = JSON.stringify({ name: "MoleculerServerError", message: "Internal error", code: 500, type: ErrorTypes.INTERNAL_ERROR });

function sameToken(given: string, expected: string): boolean {
	const digest = (s: string) => crypto.createHash("sha256").update(s).digest();
	return crypto.timingSafeEqual(digest(given), digest(expected));
}

/**
 * @param routeSources the schemas of the services whose `rest` actions this gateway serves
 *   (all of them, whether or not they run on this node).
 */
export function createApiService(config: Config, routeSources: Partial<ServiceSchema>[]): ServiceSchema<ServiceSettingSchema & Record<string, any>, Methods, Vars> {
	const routes = collectRoutes(routeSources);
	const bodyLimits = { maxBytes: config.http.bodyLimitBytes, ...DEFAULT_JSON_LIMITS };
	const verbose = config.logLevel === "debug" || config.logLevel === "trace";
	const aliases = Object.fromEntries(routes.map(r => [`${r.method} ${r.path}`, r.action]));
	// The services this gateway's routes call (and EMQX's hooks: hardware), for /ready's `degraded`.
	const needs = [...new Set([...routes.map(r => r.action.slice(0, r.action.indexOf("."))), "hardware"])];
	const adminFiles = loadAdminFiles();
	const sendAdminFile = (req: Req, res: Res) => {
		const name = String(req.$params?.file ?? "");
		const file = adminFiles.get(req.$params?.dir === "vendor" ? `vendor/${name}` : name);
		if (!file) throw new Errors.MoleculerClientError("Not found", 404, ErrorTypes.NOT_FOUND);
		res.setHeader("Content-Security-Policy", ADMIN_CSP);
		res.setHeader("Content-Type", file.type);
		res.statusCode = 200;
		res.end(file.body);
	};

	return {
		name: "api",
		mixins: [ApiGateway as unknown as Partial<ServiceSchema>, createLiveMixin(config)],

		settings: {
			port: config.port,
			ip: "0.0.0.0",
			// The request id travels in ctx.meta and is echoed: a client's own is taken only when it is sane.
			rootCallOptions(options: { requestID?: string; tracking?: boolean }, req: Req) {
				if (options.requestID !== undefined && !REQUEST_ID.test(options.requestID)) delete options.requestID;
				if (EVENTS_URL.test(String(req.url))) options.tracking = false;
			},
			use: [
				function securityHeaders(_req: Req, res: Res, next: () => void) {
					for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
					next();
				},
			],
			cors: {
				origin: config.http.corsOrigins,
				methods: ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
				allowedHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
				exposedHeaders: ["X-Request-Id", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"],
				credentials: false,
				maxAge: 600,
			},
			// moleculer-web builds the coloured line (status, URL, duration) before the logger drops it:
			// below debug, no request or response lines at all rather than two strings made per request.
			logRequest: verbose ? "debug" : null,
			logResponse: verbose ? "debug" : null,
			log4XXResponses: false,
			logRequestParams: null,
			logResponseData: null,
			httpServerTimeout: 30_000,

			routes: [
				{
					name: "v1",
					path: API_PREFIX,
					aliases,
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: true,
					authorization: true,
					mergeParams: true,
					bodyParsers: false,
					use: [jsonBody(bodyLimits)],
					// No call timeout here: each action's own (`timeout` in its schema, else REQUEST_TIMEOUT_MS)
					// applies, so a door route waits for the door's verdict instead of answering 503 first.
					async onBeforeCall(this: This, ctx: Context<unknown, AppMeta>, _route: unknown, req: Req, res: Res) {
						const ip = this.clientIp(req);
						ctx.meta.viaGateway = true;
						ctx.meta.requestId = ctx.requestID ?? undefined;
						ctx.meta.clientIp = ip;
						// moleculer-web merged body, query and path params with Object.assign, where a body's own
						// `__proto__` key would set the prototype instead of showing up. Copy by spreading, which
						// keeps every key an own key for the strict params check (json-body refuses them already).
						req.$params = { ...(req.body ?? {}), ...req.$params };
						let shown = await this.applyLimit(res, "ip", ip, "requests from your address");
						const def = req.$alias?.action ? this.routeByAction.get(req.$alias.action) : undefined;
						req.$routeDef = def; // read again by authorize()
						if (def?.idempotent) {
							const key = req.headers["idempotency-key"];
							if (key !== undefined) {
								if (typeof key !== "string" || !IDEMPOTENCY_KEY.test(key)) {
									throw new Errors.MoleculerClientError("Idempotency-Key must be 1–255 visible ASCII characters", 400, ErrorTypes.INVALID_IDEMPOTENCY_KEY);
								}
								ctx.meta.idempotencyKey = key;
							}
						}
						if (def?.rawBody) {
							ctx.meta.rawBody = req.rawBody?.toString("utf8") ?? "";
							ctx.meta.headers = Object.fromEntries(def.rawBody.headers.map(h => [h, String(req.headers[h] ?? "").slice(0, 512)]));
						}
						if (def?.rateLimit === "credentials") {
							shown = await this.applyLimit(res, "credentials", ip, "sign-in attempts from your address");
						}
						req.$limitShown = shown; // written by authorize(), which runs next
					},
				},
				{
					name: "ops",
					path: API_PREFIX,
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: { json: false, urlencoded: false },
					aliases: {
						"GET /health"(this: This, req: Req, res: Res) {
							this.sendJson(req, res, 200, { status: "ok", nodeID: this.broker.nodeID, uptimeSec: Math.round(process.uptime()) });
						},
						async "GET /ready"(this: This, req: Req, res: Res) {
							const r = await checkReadiness(this.broker, config, { needs });
							this.sendJson(req, res, r.ready ? 200 : 503, r);
						},
					},
				},
				{
					// Server-sent events (api/live-stream.ts): the same token, session and budget checks, made there.
					name: "live",
					path: API_PREFIX,
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: false,
					aliases: {
						"GET /events"(this: This, req: Req, res: Res) {
							void this.openLiveStream(req, res);
						},
					},
				},
				{
					// EMQX's authentication/authorization hooks (deploy/emqx/emqx.conf): no user token, no
					// per-IP limit (every CONNECT and PUBLISH comes from the broker's address), but the
					// shared hook secret in x-hook-secret.
					name: "mqtt-hooks",
					path: `${API_PREFIX}/internal/mqtt`,
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: false,
					use: [jsonBody({ ...bodyLimits, maxBytes: 8 * 1024 })],
					aliases: { "POST /auth": "hardware.mqttAuth", "POST /acl": "hardware.mqttAcl" },
					onBeforeCall(ctx: Context<unknown, AppMeta & { mqttHook?: boolean }>, _route: unknown, req: Req) {
						ctx.meta.mqttHook = sameToken(String(req.headers["x-hook-secret"] ?? ""), config.mqtt.hookSecret);
					},
				},
				{
					// The operators' network map: static files from memory, under a CSP that lets the page
					// load its own modules and call this API (the API's own answers keep default-src 'none').
					name: "admin",
					path: "/admin",
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: { json: false, urlencoded: false },
					aliases: { "GET /": sendAdminFile, "GET /:file": sendAdminFile, "GET /:dir/:file": sendAdminFile },
				},
				{
					name: "openapi",
					path: "/api",
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: { json: false, urlencoded: false },
					aliases: {
						"GET /openapi.json"(this: This, req: Req, res: Res) {
							this.sendJson(req, res, 200, this.openapi);
						},
						// The document made readable; this route's CSP lets its own inline script fetch the JSON.
						"GET /docs"(_req: Req, res: Res) {
							res.setHeader("Content-Security-Policy", DOCS_PAGE_CSP);
							res.setHeader("Cache-Control", "no-cache");
							res.setHeader("Content-Type", "text/html; charset=utf-8");
							res.end(DOCS_PAGE);
						},
					},
				},
				{
					// The node's own metrics port (127.0.0.1 by default) is where Prometheus scrapes. The API
					// port serves them too only with METRICS_TOKEN as a bearer token, or outside production.
					name: "metrics",
					path: "/",
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: { json: false, urlencoded: false },
					aliases: {
						"GET /metrics"(this: This, req: Req, res: Res) {
							if (config.metricsToken ? !sameToken(String(req.headers.authorization ?? ""), `Bearer ${config.metricsToken}`) : config.env === "production") {
								res.statusCode = 404;
								res.end();
								return;
							}
							const reporter = ((this.broker as any).metrics?.reporter ?? []).find(
								(r: any) => typeof r.generatePrometheusResponse === "function",
							);
							res.setHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
							res.statusCode = reporter ? 200 : 404;
							res.end(reporter ? reporter.generatePrometheusResponse() : "metrics are disabled\n");
						},
					},
				},
			],

			// Nothing in here may throw: it is the last code between a hostile request and the process.
			onError(this: This, req: Req, res: Res, err: any) {
				try {
					const requestId = req.$ctx?.requestID ?? undefined;
					const body = toErrorBody(err, requestId);
					const where = `[${requestId}] ${req.method} ${String(req.url).slice(0, 200)} → ${body.code} ${body.type}`;
					// A domain answer (cabinet offline, door timeout, no endpoint) is routine: one line, no stack.
					if (body.type === ErrorTypes.INTERNAL_ERROR) this.logger.error(where, err);
					else if (body.code >= 500) this.logger.warn(`${where}${(body.data as any)?.reason ? ` (${(body.data as any).reason})` : ""}`);
					if (!res.headersSent) {
						const retryAfter = (err?.data as { retryAfter?: number } | undefined)?.retryAfter;
						if (body.code === 429 && retryAfter) res.setHeader("Retry-After", String(retryAfter));
						if (body.code === 503) res.setHeader("Retry-After", "1");
						// Refused before authorize() wrote them (a bad token, say): the address's budget.
						if (req.$limitShown && !res.hasHeader("RateLimit-Limit")) this.showLimit(res, req.$limitShown);
					}
					this.sendJson(req, res, body.code, body);
				} catch (failure) {
					this.logger.error("The error handler failed", failure);
					if (res.headersSent) res.destroy();
					else {
						res.writeHead(500, { "Content-Type": "application/json; charset=utf-8" });
						res.end(LAST_RESORT);
					}
				}
			},
		},

		actions: {
			// moleculer-web's entry action: failures behind it belong to the services it calls,
			// whose own breakers count them; a breaker here would shut the whole gateway.
			// No timeout of its own either: each action called behind it has its own, and a timeout here
			// would cap them all (Moleculer's distributed timeouts) below a door's command timeout.
			rest: { circuitBreaker: { enabled: false }, timeout: 0 } as any,
		},

		events: {
			"users.session.revoked": {
				params: { sid: "string", userId: "string", reason: "string", until: "number" },
				handler(this: This, ctx: Context<SessionRevokedEvent>) {
					return this.markRevoked(ctx.params);
				},
			},
		},

		methods: {
			clientIp(req: Req): string {
				if (config.http.trustProxy) {
					const fwd = req.headers["x-forwarded-for"];
					const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(",")[0]?.trim();
					if (first) return first;
				}
				return req.socket.remoteAddress ?? "unknown";
			},

			/** Takes one request from a budget; a refusal shows that budget's headers and throws 429. */
			async applyLimit(this: This, res: Res, budget: Budget, key: string, what: string) {
				const r = await this.limits.take(budget, key);
				if (!r.allowed) {
					this.showLimit(res, r);
					throw rateLimited(`Too many ${what}; try again in ${r.resetSec} s`, r.resetSec);
				}
				return r;
			},

			// Written once per request, for one budget: three header validations instead of six or nine.
			showLimit(res: Res, r: LimitResult) {
				res.setHeader("RateLimit-Limit", String(r.limit));
				res.setHeader("RateLimit-Remaining", String(r.remaining));
				res.setHeader("RateLimit-Reset", String(r.resetSec));
			},

			async authenticate(this: This, _ctx: Context<unknown, AppMeta>, _route: unknown, req: Req): Promise<AuthUser | null> {
				const header = req.headers.authorization;
				if (!header) return null;
				const m = /^Bearer\s+(\S+)$/i.exec(header);
				if (!m) throw unauthorized("Authorization header must be 'Bearer <accessToken>'", ErrorTypes.INVALID_TOKEN);
				const verified = this.tokens.verifyAccess(m[1]);
				if (!verified.ok) {
					throw verified.error === "expired"
						? unauthorized("Access token expired; refresh it", ErrorTypes.TOKEN_EXPIRED)
						: unauthorized("Invalid access token", ErrorTypes.INVALID_TOKEN);
				}
				if (await this.isRevoked(verified.claims.sid)) throw unauthorized("This session has been signed out", ErrorTypes.SESSION_REVOKED);
				return TokenService.userOf(verified.claims);
			},

			async authorize(this: This, ctx: Context<unknown, AppMeta>, _route: unknown, req: Req, res: Res): Promise<void> {
				const denied = checkAccess(req.$routeDef?.auth, ctx.meta.user);
				if (denied) throw denied;
				// The headers show the per-user budget when signed in, else the address's (taken in onBeforeCall).
				const shown = ctx.meta.user ? await this.applyLimit(res, "user", ctx.meta.user.id, "requests for your account") : req.$limitShown;
				if (shown) this.showLimit(res, shown);
			},

			async isRevoked(this: This, sid: string): Promise<boolean> {
				const until = this.revoked.get(sid);
				if (until !== undefined) {
					if (until > Date.now()) return true;
					this.revoked.delete(sid);
				}
				// With Redis the deny-list is shared: a gateway that started after the logout knows it too.
				if (config.redisUrl && this.broker.cacher) return (await this.broker.cacher.get(REVOKED_KEY + sid)) != null;
				return false;
			},

			async markRevoked(this: This, ev: SessionRevokedEvent) {
				const ttlSec = Math.ceil((ev.until - Date.now()) / 1000);
				if (ttlSec <= 0) return;
				this.revoked.set(ev.sid, ev.until);
				await this.broker.cacher?.set(REVOKED_KEY + ev.sid, ev.until, ttlSec);
			},

			sendJson(req: Req, res: Res, status: number, body: unknown) {
				let text: string;
				try {
					text = JSON.stringify(body);
				} catch (err) {
					this.logger.error(`Answer to ${req.method} ${String(req.url).slice(0, 200)} could not be encoded`, err);
					[status, text] = [500, LAST_RESORT];
				}
				if (res.headersSent) return void res.end();
				const requestId = req.$ctx?.requestID;
				if (requestId) res.setHeader("X-Request-Id", requestId);
				res.statusCode = status;
				res.setHeader("Content-Type", "application/json; charset=utf-8");
				res.end(text);
			},

			// moleculer-web's own logs every 5xx at ERROR with its stack before onError runs; onError
			// logs by kind instead.
			errorHandler(this: This & { sendError(req: Req, res: Res, err: unknown): void }, req: Req, res: Res, err: unknown) {
				this.sendError(req, res, err);
			},
		},

		created(this: This) {
			this.tokens = new TokenService(config.auth);
			this.routeByAction = new Map(routes.map(r => [r.action, r]));
			this.openapi = buildOpenApi(routes, { prefix: API_PREFIX, title: "Locker platform API", version: "1" });
			(this.openapi as { paths: Record<string, unknown> }).paths[`${API_PREFIX}/events`] = { get: LIVE_OPENAPI_OPERATION };
			this.revoked = new Map();
			const factory = createLimiterFactory({ ...config, logger: this.logger }, "api-ratelimit");
			this.closeLimiter = factory.close;
			this.limits = new RateLimits(factory, config.rateLimit);
		},

		started(this: This) {
			// Requests Node's HTTP parser refuses (a URL or headers over its 16 KB, broken framing)
			// never reach a route: answer them in API.md's shape too, then close.
			(this as unknown as { server: Server }).server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
				if (err.code === "ECONNRESET" || !socket.writable) return void socket.destroy();
				const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
				const body = JSON.stringify({
					name: "MoleculerClientError",
					message: tooLarge ? "Request line or headers are too large" : "Malformed HTTP request",
					code: tooLarge ? 431 : 400,
					type: tooLarge ? ErrorTypes.HEADERS_TOO_LARGE : ErrorTypes.INVALID_REQUEST,
				});
				socket.end(`HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
			});
			// With Redis the deny-list lives in the shared cacher. Without it, learn the sessions
			// revoked before this gateway started (their access tokens may still verify).
			if (config.redisUrl) return;
			waitForServicesWhileRunning(this.broker, ["users"], 30_000)
				.then(() => this.broker.call<SessionRevokedEvent[]>("users.revokedSessions"))
				.then(list => Promise.all(list.map(ev => this.markRevoked(ev))))
				.catch(err => this.broker.stopping || this.logger.warn(`Could not load revoked sessions: ${err.message}`));
		},

		async stopped(this: This) {
			await this.closeLimiter();
		},
	};
}
