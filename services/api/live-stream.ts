/**
 * GET /api/v1/events: the platform's changes as server-sent events, for the
 * gateway (a mixin of the api service, which brings the token check, the
 * rate limits and the error shape).
 *
 * - Orders and alerts are few: the gateway always listens and drops them at
 *   once while no stream is open. Door and cabinet events can be thousands a
 *   second: they reach this node only while it has a stream (a small
 *   service, `live`, created for the first stream and removed `lingerMs`
 *   after the last), so a gateway nobody watches is not sent them at all.
 *   On a mesh the other nodes learn of that service after Moleculer's
 *   service-changed debounce: the first stream of a node may miss the door
 *   events of its first moments.
 * - Each stream is bounded (sse.ts); a revoked session's streams end, and a
 *   stream ends when its access token expires (the client reconnects with a
 *   fresh one).
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { Config } from "../../config";
import type { TokenService } from "../../lib/access-tokens";
import type { AppMeta, AuthUser } from "../../types/auth";
import { ErrorTypes, unauthorized } from "../../types/errors";
import type { AlertChangedEvent, CabinetLinkEvent, DoorStateChangedEvent, OrderChangedEvent, SessionRevokedEvent } from "../../types/events";
import { accessOf, LiveHub, parseLiveQuery, type LiveAccess, type LiveFilters, type Subscriber } from "./live-hub";
import type { Budget, LimitResult } from "./rate-limit";
import { SSE_PING, sseFrame, SseWriter, type CloseReason } from "./sse";

/** The service that holds this node's door and cabinet subscriptions while streams are open. */
export const LIVE_SERVICE = "live";

/** Where a client reconnects to after a dropped stream (SSE `retry:`, ms). */
const RETRY_MS = 5000;

type LiveConfig = Config["live"];

export interface ClosedStream {
	userId: string;
	reason: CloseReason;
	/** The most the stream's queue ever held. */
	peak: { events: number; bytes: number };
}

interface Stream {
	user: AuthUser;
	writer: SseWriter;
	sub?: Subscriber;
	timers: NodeJS.Timeout[];
}

/** An API error body (API.md), sent as an SSE `error` event. */
const errorEvent = (code: number, type: string, message: string, data?: unknown) =>
	sseFrame("error", { name: "MoleculerClientError", message, code, type, ...(data === undefined ? {} : { data }) });

/**
 * The streams of one gateway node. Events: `closed` (ClosedStream), `subscribed` and `unsubscribed` (the
 * node started or stopped receiving door and cabinet events).
 */
export class LiveStreams extends EventEmitter {
	readonly hub = new LiveHub();
	private readonly streams = new Set<Stream>();
	private subscription: Promise<Service> | null = null;
	private unsubscribing: Promise<void> | null = null;
	private lingerTimer?: NodeJS.Timeout;
	private shuttingDown = false;

	constructor(
		private readonly broker: ServiceBroker,
		private readonly cfg: LiveConfig,
	) {
		super();
	}

	get size(): number {
		return this.streams.size;
	}

	/** Why a new stream of this user may not open now, or null. */
	refusal(userId: string): { message: string; limit: number } | null {
		if (this.shuttingDown) return { message: "This gateway is shutting down; connect again", limit: 0 };
		if (this.streams.size >= this.cfg.maxStreams) return { message: "This gateway holds as many event streams as it can; try again later", limit: this.cfg.maxStreams };
		let mine = 0;
		for (const s of this.streams) if (s.user.id === userId) mine++;
		if (mine >= this.cfg.maxStreamsPerUser) return { message: `At most ${this.cfg.maxStreamsPerUser} event streams per account; close one first`, limit: this.cfg.maxStreamsPerUser };
		return null;
	}

	/**
	 * Starts a stream on `res` (headers already checked). `ready` is its first event, sent once this node
	 * receives what the stream may see; `seed` gives a user's orders, whose doors it follows.
	 */
	async open(res: ServerResponse, user: AuthUser, access: LiveAccess, filters: LiveFilters, expiresAt: number, seed?: () => Promise<{ id: string; status: string; doorId: string }[]>) {
		res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no" });
		// The heartbeat keeps it busy; the server's idle timeout is for requests, not for streams.
		res.socket?.setTimeout(0);
		res.socket?.setNoDelay(true);
		const stream: Stream = { user, timers: [], writer: null as unknown as SseWriter };
		stream.writer = new SseWriter(res, { maxEvents: this.cfg.queueEvents, maxBytes: this.cfg.queueBytes }, reason => this.closed(stream, reason));
		this.streams.add(stream);
		stream.writer.send(`retry: ${RETRY_MS}\n\n`);
		try {
			await this.subscribe();
		} catch (err) {
			stream.writer.close("shutdown", errorEvent(503, ErrorTypes.SERVICE_UNAVAILABLE, "Live events are not available on this gateway now"));
			throw err;
		}
		const orders = seed ? await seed() : [];
		if (stream.writer.closed) return;
		stream.sub = { user, access, filters, send: frame => void stream.writer.send(frame) };
		this.hub.add(stream.sub);
		if (access.scope.kind === "user") this.hub.follow(user.id, orders);
		stream.writer.send(sseFrame("ready", { role: access.role, topics: [...filters.topics] }));
		stream.timers.push(setInterval(() => stream.writer.send(SSE_PING), this.cfg.heartbeatMs).unref());
		stream.timers.push(
			setTimeout(() => this.end(stream, "expired", errorEvent(401, ErrorTypes.TOKEN_EXPIRED, "Access token expired; refresh it and connect again")), Math.max(0, expiresAt - Date.now())).unref(),
		);
	}

	/** A signed-out session's streams end. */
	endSession(sid: string) {
		for (const s of [...this.streams]) if (s.user.sid === sid) this.end(s, "revoked", errorEvent(401, ErrorTypes.SESSION_REVOKED, "This session has been signed out"));
	}

	/** Every stream ends (the gateway stops); the subscription goes with the broker. */
	closeAll() {
		this.shuttingDown = true;
		clearTimeout(this.lingerTimer);
		for (const s of [...this.streams]) this.end(s, "shutdown", errorEvent(503, ErrorTypes.SERVICE_UNAVAILABLE, "This gateway is shutting down; connect again"));
	}

	private end(s: Stream, reason: CloseReason, last: string) {
		s.writer.close(reason, last);
	}

	private closed(s: Stream, reason: CloseReason) {
		if (!this.streams.delete(s)) return;
		if (s.sub) this.hub.remove(s.sub);
		for (const t of s.timers) clearTimeout(t);
		this.emit("closed", { userId: s.user.id, reason, peak: { ...s.writer.peak } } satisfies ClosedStream);
		if (!this.streams.size && this.subscription && !this.shuttingDown) {
			clearTimeout(this.lingerTimer);
			this.lingerTimer = setTimeout(() => void this.unsubscribe(), this.cfg.lingerMs).unref();
		}
	}

	private async subscribe() {
		clearTimeout(this.lingerTimer);
		// The registry knows a local service by name: a removal in flight finishes before the next is created.
		await this.unsubscribing;
		if (!this.subscription) {
			const hub = this.hub;
			this.subscription = new Promise<Service>(resolve => {
				const svc: Service = this.broker.createService({
					name: LIVE_SERVICE,
					events: {
						"doors.state.changed"(ctx: Context<DoorStateChangedEvent>) { hub.door(ctx.params); },
						"doors.cabinet.online"(ctx: Context<CabinetLinkEvent>) { hub.cabinet(ctx.params, true); },
						"doors.cabinet.offline"(ctx: Context<CabinetLinkEvent>) { hub.cabinet(ctx.params, false); },
					},
					// The broker registers the service's event handlers right after started() (same tick of promises).
					started() { setImmediate(() => resolve(svc)); },
				});
			});
			await this.subscription;
			this.emit("subscribed");
		}
		await this.subscription;
	}

	private async unsubscribe() {
		if (this.streams.size || !this.subscription || this.unsubscribing || this.shuttingDown) return;
		const pending = this.subscription;
		this.subscription = null;
		this.unsubscribing = pending
			.then(svc => this.broker.destroyService(svc))
			.catch(() => undefined)
			.then(() => {
				this.unsubscribing = null;
				this.emit("unsubscribed");
			});
		await this.unsubscribing;
	}
}

type Req = IncomingMessage & { query?: Record<string, unknown>; $ctx?: Context<unknown, AppMeta>; $route?: unknown; $limitShown?: LimitResult };

/** What the live mixin uses of the api service it is mixed into. */
interface Host {
	broker: ServiceBroker;
	logger: { warn(...args: unknown[]): void };
	tokens: TokenService;
	live: LiveStreams;
	clientIp(req: Req): string;
	applyLimit(res: ServerResponse, budget: Budget, key: string, what: string): Promise<LimitResult>;
	showLimit(res: ServerResponse, r: LimitResult): void;
	authenticate(ctx: unknown, route: unknown, req: Req): Promise<AuthUser | null>;
	sendError(req: Req, res: ServerResponse, err: unknown): void;
	openLiveStream(req: Req, res: ServerResponse): Promise<void>;
}

/** The api service's part for GET /events (its route, a raw alias, calls `openLiveStream`). */
export function createLiveMixin(config: Config): Partial<ServiceSchema> {
	const mixin: Partial<ServiceSchema> & { merged(schema: ServiceSchema): void } = {
		events: {
			"orders.order.changed"(this: Host, ctx: Context<OrderChangedEvent>) {
				this.live.hub.order(ctx.params);
			},
			"alerts.alert.changed"(this: Host, ctx: Context<AlertChangedEvent>) {
				this.live.hub.alert(ctx.params);
			},
			"users.session.revoked"(this: Host, ctx: Context<SessionRevokedEvent>) {
				this.live.endSession(ctx.params.sid);
			},
		},

		methods: {
			/** Checks like any API request (address budget, token and its session, the account's budget), then streams. */
			async openLiveStream(this: Host, req: Req, res: ServerResponse) {
				try {
					req.$limitShown = await this.applyLimit(res, "ip", this.clientIp(req), "requests from your address");
					const user = await this.authenticate(req.$ctx, req.$route, req);
					if (!user) throw unauthorized("Sign in first: missing or invalid access token", ErrorTypes.UNAUTHORIZED);
					this.showLimit(res, await this.applyLimit(res, "user", user.id, "requests for your account"));
					const access = accessOf(user);
					const filters = parseLiveQuery(req.query ?? {}, access);
					const verified = this.tokens.verifyAccess(/^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization))![1]);
					const expiresAt = verified.ok ? verified.claims.exp * 1000 : Date.now();
					const requestId = req.$ctx?.requestID;
					if (requestId) res.setHeader("X-Request-Id", requestId);
					const refused = this.live.refusal(user.id);
					if (refused) {
						// An EventSource gives up on a non-200 answer; a fetch reader sees the status and the reason.
						res.writeHead(429, { "Content-Type": "text/event-stream; charset=utf-8", "Retry-After": "30" });
						res.end(errorEvent(429, "TOO_MANY_STREAMS", refused.message, { limit: refused.limit }));
						return;
					}
					const seed = access.scope.kind === "user" && filters.topics.has("door")
						? () => this.broker
							.call<{ rows: { id: string; status: string; doorId: string }[] }, object>("orders.list", { page: 1, pageSize: 100 }, { meta: { user } })
							.then(page => page.rows, err => {
								this.logger.warn(`Live events: the orders of ${user.id} could not be read (${(err as Error).message}); their doors are followed from their next change`);
								return [];
							})
						: undefined;
					await this.live.open(res, user, access, filters, expiresAt, seed);
				} catch (err) {
					if (!res.headersSent) this.sendError(req, res, err);
					else this.logger.warn(`Live events stream failed: ${(err as Error).message}`);
				}
			},
		},

		created() {
			const host = this as unknown as Host;
			host.live = new LiveStreams(host.broker, config.live);
		},

		merged(schema: ServiceSchema) {
			// Streams end before the gateway's other stop handlers run: its HTTP server waits for open responses to end.
			const rest = ([] as unknown[]).concat(schema.stopped ?? []);
			schema.stopped = [function (this: Host) { this.live.closeAll(); }, ...rest] as ServiceSchema["stopped"];
		},
	};
	return mixin;
}
