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
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { Config } from "../config";
import { createCounterStore } from "../lib/counters";
import { checkReadiness } from "../lib/readiness";
import { checkAccess } from "../middlewares/access";
import type { AppMeta, AuthUser } from "../types/auth";
import { ErrorTypes, rateLimited, unauthorized } from "../types/errors";
import { TokenService } from "./users/tokens";
import type { SessionRevokedEvent } from "./users.service";
import { collectRoutes, type RouteDef } from "./api/routes";
import { buildOpenApi } from "./api/openapi";
import { RateLimiter, type LimitResult } from "./api/rate-limit";
import { toErrorBody } from "./api/errors";

export const API_PREFIX = "/api/v1";

type Req = IncomingMessage & { $ctx?: Context<unknown, AppMeta>; $alias?: { action?: string }; $route?: unknown; $routeDef?: RouteDef };
type Res = ServerResponse;

interface Methods {
	authenticate(ctx: Context<unknown, AppMeta>, route: unknown, req: Req): Promise<AuthUser | null>;
	authorize(ctx: Context<unknown, AppMeta>, route: unknown, req: Req, res: Res): Promise<void>;
	clientIp(req: Req): string;
	applyLimit(res: Res, key: string, limit: number, what: string): Promise<void>;
	isRevoked(sid: string): Promise<boolean>;
	markRevoked(ev: SessionRevokedEvent): Promise<void>;
	sendJson(req: Req, res: Res, status: number, body: unknown): void;
}

interface Vars {
	tokens: TokenService;
	limiter: RateLimiter;
	closeLimiter: () => Promise<unknown>;
	routeByAction: Map<string, RouteDef>;
	openapi: unknown;
	/** sid → until (ms): sessions whose access tokens are refused. */
	revoked: Map<string, number>;
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

/**
 * @param routeSources the schemas of the services whose `rest` actions this gateway serves
 *   (all of them, whether or not they run on this node).
 */
export function createApiService(config: Config, routeSources: Partial<ServiceSchema>[]): ServiceSchema<ServiceSettingSchema & Record<string, any>, Methods, Vars> {
	const routes = collectRoutes(routeSources);
	const aliases = Object.fromEntries(routes.map(r => [`${r.method} ${r.path}`, r.action]));

	return {
		name: "api",
		mixins: [ApiGateway as unknown as Partial<ServiceSchema>],

		settings: {
			port: config.port,
			ip: "0.0.0.0",
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
			logRequest: "debug",
			logResponse: "debug",
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
					bodyParsers: { json: { limit: config.http.bodyLimit, strict: true }, urlencoded: false },
					callOptions: { timeout: config.requestTimeoutMs },
					async onBeforeCall(this: This, ctx: Context<unknown, AppMeta>, _route: unknown, req: Req, res: Res) {
						const ip = this.clientIp(req);
						ctx.meta.viaGateway = true;
						ctx.meta.requestId = ctx.requestID ?? undefined;
						ctx.meta.clientIp = ip;
						await this.applyLimit(res, `ip:${ip}`, config.rateLimit.ipPerWindow, "requests from your address");
						const def = req.$alias?.action ? this.routeByAction.get(req.$alias.action) : undefined;
						req.$routeDef = def; // read again by authorize()
						if (def?.rateLimit === "credentials") {
							await this.applyLimit(res, `cred:${ip}`, config.rateLimit.authPerWindow, "sign-in attempts from your address");
						}
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
							const r = await checkReadiness(this.broker, config);
							this.sendJson(req, res, r.ready ? 200 : 503, r);
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
					bodyParsers: { json: { limit: "8kb", strict: true }, urlencoded: false },
					aliases: { "POST /auth": "hardware.mqttAuth", "POST /acl": "hardware.mqttAcl" },
					onBeforeCall(ctx: Context<unknown, AppMeta & { mqttHook?: boolean }>, _route: unknown, req: Req) {
						const given = String(req.headers["x-hook-secret"] ?? "");
						const digest = (s: string) => crypto.createHash("sha256").update(s).digest();
						ctx.meta.mqttHook = crypto.timingSafeEqual(digest(given), digest(config.mqtt.hookSecret));
					},
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
					},
				},
				{
					name: "metrics",
					path: "/",
					mappingPolicy: "restrict",
					autoAliases: false,
					authentication: false,
					authorization: false,
					bodyParsers: { json: false, urlencoded: false },
					aliases: {
						"GET /metrics"(this: This, _req: Req, res: Res) {
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

			onError(this: This, req: Req, res: Res, err: any) {
				const requestId = req.$ctx?.requestID ?? undefined;
				const body = toErrorBody(err, requestId);
				if (body.code === 503) this.logger.warn(`[${requestId}] ${req.method} ${req.url} → 503 (${(body.data as any)?.reason})`);
				else if (body.code >= 500) this.logger.error(`[${requestId}] ${req.method} ${req.url} → ${body.code}`, err);
				const retryAfter = (err?.data as { retryAfter?: number } | undefined)?.retryAfter;
				if (body.code === 429 && retryAfter) res.setHeader("Retry-After", String(retryAfter));
				if (body.code === 503) res.setHeader("Retry-After", "1");
				this.sendJson(req, res, body.code, body);
			},
		},

		actions: {
			// moleculer-web's entry action: failures behind it belong to the services it calls,
			// whose own breakers count them; a breaker here would shut the whole gateway.
			rest: { circuitBreaker: { enabled: false } } as any,
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

			async applyLimit(this: This, res: Res, key: string, limit: number, what: string) {
				const r: LimitResult = await this.limiter.take(key, limit, config.rateLimit.windowMs);
				res.setHeader("RateLimit-Limit", String(r.limit));
				res.setHeader("RateLimit-Remaining", String(r.remaining));
				res.setHeader("RateLimit-Reset", String(r.resetSec));
				if (!r.allowed) throw rateLimited(`Too many ${what}; try again in ${r.resetSec} s`, r.resetSec);
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
				if (ctx.meta.user) {
					await this.applyLimit(res, `user:${ctx.meta.user.id}`, config.rateLimit.userPerWindow, "requests for your account");
				}
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
				const requestId = req.$ctx?.requestID;
				if (requestId) res.setHeader("X-Request-Id", requestId);
				res.statusCode = status;
				res.setHeader("Content-Type", "application/json; charset=utf-8");
				res.end(JSON.stringify(body));
			},
		},

		created(this: This) {
			this.tokens = new TokenService(config.auth);
			this.routeByAction = new Map(routes.map(r => [r.action, r]));
			this.openapi = buildOpenApi(routes, { prefix: API_PREFIX, title: "Locker platform API", version: "1" });
			this.revoked = new Map();
			const { store, close } = createCounterStore(config, "api-ratelimit");
			this.closeLimiter = close;
			this.limiter = new RateLimiter(store);
		},

		started(this: This) {
			// With Redis the deny-list lives in the shared cacher. Without it, learn the sessions
			// revoked before this gateway started (their access tokens may still verify).
			if (config.redisUrl) return;
			this.broker
				.waitForServices("users", 30_000)
				.then(() => this.broker.call<SessionRevokedEvent[]>("users.revokedSessions"))
				.then(list => Promise.all(list.map(ev => this.markRevoked(ev))))
				.catch(err => this.logger.warn(`Could not load revoked sessions: ${err.message}`));
		},

		async stopped(this: This) {
			await this.closeLimiter();
		},
	};
}
