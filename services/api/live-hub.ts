/**
 * Who sees which live event (GET /events), without a broker: the caller's
 * scope from its roles, the query's filters, and a hub that routes each
 * platform event to the streams that may see it — through indexes (staff,
 * by merchant, by user, by door of a user's order), so a door event costs
 * the streams it reaches, not every open stream.
 */
import type { AuthUser } from "../../types/auth";
import { forbidden, invalid } from "../../types/errors";
import { ID_PATTERN } from "../../types/params";
import type { AlertChangedEvent, CabinetLinkEvent, DoorStateChangedEvent, OrderChangedEvent } from "../../types/events";
import { sseFrame } from "./sse";

export const TOPICS = ["door", "cabinet", "order", "alert"] as const;
export type Topic = (typeof TOPICS)[number];

export type Scope = { kind: "all" } | { kind: "merchant"; merchantId: string } | { kind: "user"; userId: string };

export interface LiveAccess {
	/** The role the stream is scoped by (the widest the caller has). */
	role: "admin" | "operator" | "merchant" | "user";
	scope: Scope;
	topics: readonly Topic[];
}

/** An order in one of these says nothing more about its door. */
const ENDED = new Set(["completed", "cancelled", "expired"]);

/** A user follows the doors of at most this many of its orders (newest kept). */
export const MAX_TRACKED_ORDERS = 100;

export function accessOf(user: AuthUser): LiveAccess {
	if (user.roles.includes("admin")) return { role: "admin", scope: { kind: "all" }, topics: TOPICS };
	if (user.roles.includes("operator")) return { role: "operator", scope: { kind: "all" }, topics: TOPICS };
	// A merchant account without its merchant sees nothing of anybody's (like GET /orders).
	if (user.roles.includes("merchant")) return { role: "merchant", scope: { kind: "merchant", merchantId: user.merchantId ?? "-" }, topics: ["door", "cabinet", "order"] };
	return { role: "user", scope: { kind: "user", userId: user.id }, topics: ["door", "order"] };
}

export interface LiveFilters {
	topics: ReadonlySet<Topic>;
	pointId?: string;
	cabinetId?: string;
}

const QUERY_KEYS = new Set(["topics", "pointId", "cabinetId"]);

/**
 * The query of GET /events, checked before the stream starts: 422 (API.md's shape, every problem at once)
 * for what is malformed, 403 for a topic the caller may not see.
 */
export function parseLiveQuery(query: Record<string, unknown>, access: LiveAccess): LiveFilters {
	const problems: { field: string; message: string; type?: string }[] = [];
	for (const key of Object.keys(query)) {
		if (!QUERY_KEYS.has(key)) problems.push({ field: key.slice(0, 40), message: `unknown query parameter (known: ${[...QUERY_KEYS].join(", ")})`, type: "objectStrict" });
	}
	const id = (name: "pointId" | "cabinetId"): string | undefined => {
		const v = query[name];
		if (v === undefined) return undefined;
		if (typeof v !== "string" || v.length > 64 || !ID_PATTERN.test(v)) problems.push({ field: name, message: `${name} must be one id, like ${name === "pointId" ? "pt" : "cab"}_…`, type: "stringPattern" });
		return typeof v === "string" ? v : undefined;
	};
	const pointId = id("pointId");
	const cabinetId = id("cabinetId");
	let topics: Topic[] = [...access.topics];
	const raw = query.topics;
	if (raw !== undefined) {
		const names = typeof raw === "string" && raw.length <= 100 ? raw.split(",").map(s => s.trim()) : null;
		const bad = names ? names.filter(n => !(TOPICS as readonly string[]).includes(n)) : [];
		if (!names || bad.length || !names.length) {
			problems.push({ field: "topics", message: `topics must be a comma list of ${TOPICS.join(", ")}`, type: "enumValue" });
		} else {
			topics = [...new Set(names as Topic[])];
		}
	}
	if (problems.length) throw invalid(problems);
	const refused = topics.filter(t => !access.topics.includes(t));
	if (refused.length) throw forbidden(`Topic(s) ${refused.join(", ")} are not for the ${access.role} role`, { allowed: access.topics });
	return { topics: new Set(topics), pointId, cabinetId };
}

/** A stream as the hub sees it. */
export interface Subscriber {
	readonly user: AuthUser;
	readonly access: LiveAccess;
	readonly filters: LiveFilters;
	/** Takes one encoded frame; the hub does not care whether it is sent or queued. */
	send(frame: string): void;
}

/** The few facts each event is filtered on. */
interface Where {
	pointId?: string;
	cabinetId?: string;
}

const cabinetOfDoor = (doorId: string) => doorId.slice(0, doorId.lastIndexOf(":"));

function wants(sub: Subscriber, topic: Topic, where: Where): boolean {
	const f = sub.filters;
	if (!f.topics.has(topic)) return false;
	if (f.pointId !== undefined && where.pointId !== f.pointId) return false;
	if (f.cabinetId !== undefined && where.cabinetId !== f.cabinetId) return false;
	return true;
}

const addTo = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => (m.get(k) ?? m.set(k, new Set()).get(k)!).add(v);
const removeFrom = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => {
	const s = m.get(k);
	if (s?.delete(v) && !s.size) m.delete(k);
};

export class LiveHub {
	private readonly subs = new Set<Subscriber>();
	private readonly perUser = new Map<string, number>();
	private readonly staff = new Set<Subscriber>();
	private readonly byMerchant = new Map<string, Set<Subscriber>>();
	private readonly byUser = new Map<string, Set<Subscriber>>();
	/** doorId → orderId → userId: the doors of the open orders of users with a stream here. */
	private readonly doorHolders = new Map<string, Map<string, string>>();
	/** userId → orderId → doorId (insertion order = oldest first), to forget a user's doors at once. */
	private readonly ordersOf = new Map<string, Map<string, string>>();

	get size(): number {
		return this.subs.size;
	}

	streamsOf(userId: string): number {
		return this.perUser.get(userId) ?? 0;
	}

	/** How many doors are followed for users (tests: nothing is left behind). */
	get followedDoors(): number {
		return this.doorHolders.size;
	}

	add(sub: Subscriber) {
		if (this.subs.has(sub)) return;
		this.subs.add(sub);
		this.perUser.set(sub.user.id, this.streamsOf(sub.user.id) + 1);
		const scope = sub.access.scope;
		if (scope.kind === "all") this.staff.add(sub);
		else if (scope.kind === "merchant") addTo(this.byMerchant, scope.merchantId, sub);
		else addTo(this.byUser, scope.userId, sub);
	}

	remove(sub: Subscriber) {
		if (!this.subs.delete(sub)) return;
		const left = this.streamsOf(sub.user.id) - 1;
		if (left > 0) this.perUser.set(sub.user.id, left);
		else this.perUser.delete(sub.user.id);
		const scope = sub.access.scope;
		if (scope.kind === "all") this.staff.delete(sub);
		else if (scope.kind === "merchant") removeFrom(this.byMerchant, scope.merchantId, sub);
		else {
			removeFrom(this.byUser, scope.userId, sub);
			if (!this.byUser.has(scope.userId)) this.forgetUser(scope.userId);
		}
	}

	/** A user's orders as they are (a stream's start): the doors of the open ones are followed. */
	follow(userId: string, orders: { id: string; status: string; doorId: string }[]) {
		if (!this.byUser.has(userId)) return;
		for (const o of orders) if (!ENDED.has(o.status)) this.track(userId, o.id, o.doorId);
	}

	door(ev: DoorStateChangedEvent) {
		if (!this.subs.size) return;
		const where = { pointId: ev.pointId, cabinetId: ev.cabinetId };
		const targets = this.targets(ev.merchantId);
		const holders = this.doorHolders.get(ev.doorId);
		if (holders) {
			// A user hears of its order's door; a door freed (orderId null) is news to whoever held it.
			for (const [orderId, userId] of holders) if (ev.orderId === null || ev.orderId === orderId) this.byUser.get(userId)?.forEach(s => targets.push(s));
		}
		this.deliver(targets, "door", where, () => ({
			doorId: ev.doorId, cabinetId: ev.cabinetId, pointId: ev.pointId, merchantId: ev.merchantId, no: ev.no, size: ev.size,
			state: ev.state, open: ev.open, occupied: ev.occupied, orderId: ev.orderId, version: ev.version, at: ev.at,
		}));
	}

	cabinet(ev: CabinetLinkEvent, online: boolean) {
		if (!this.subs.size) return;
		this.deliver(this.targets(ev.merchantId), "cabinet", { pointId: ev.pointId, cabinetId: ev.cabinetId }, () => ({
			cabinetId: ev.cabinetId, pointId: ev.pointId, merchantId: ev.merchantId, online, reason: ev.reason, at: ev.at,
		}));
	}

	order(ev: OrderChangedEvent) {
		if (!this.subs.size) return;
		const own = this.byUser.get(ev.userId);
		if (own) {
			if (ENDED.has(ev.status)) this.untrack(ev.userId, ev.id);
			else this.track(ev.userId, ev.id, ev.doorId);
		}
		const targets = this.targets(ev.merchantId);
		own?.forEach(s => targets.push(s));
		this.deliver(targets, "order", { pointId: ev.pointId, cabinetId: cabinetOfDoor(ev.doorId) }, () => ({
			id: ev.id, status: ev.status, pointId: ev.pointId, doorId: ev.doorId, at: ev.at,
		}));
	}

	alert(ev: AlertChangedEvent) {
		if (!this.staff.size) return;
		const labels = ev.labels ?? {};
		this.deliver([...this.staff], "alert", { pointId: labels.pointId, cabinetId: labels.cabinetId }, () => ({
			id: ev.id, name: ev.name, severity: ev.severity, state: ev.state, labels, startsAt: ev.startsAt, ...(ev.endsAt ? { endsAt: ev.endsAt } : {}),
		}));
	}

	/** Staff streams and the merchant's (a fresh list the caller may add to). */
	private targets(merchantId: string): Subscriber[] {
		const list = [...this.staff];
		this.byMerchant.get(merchantId)?.forEach(s => list.push(s));
		return list;
	}

	/** The frame is encoded once, and only when some stream wants it. */
	private deliver(targets: Subscriber[], topic: Topic, where: Where, data: () => unknown) {
		let frame: string | undefined;
		for (const s of new Set(targets)) {
			if (!wants(s, topic, where)) continue;
			frame ??= sseFrame(topic, data());
			s.send(frame);
		}
	}

	private track(userId: string, orderId: string, doorId: string) {
		const mine = this.ordersOf.get(userId) ?? this.ordersOf.set(userId, new Map()).get(userId)!;
		const before = mine.get(orderId);
		if (before === doorId) return;
		if (before !== undefined) this.untrack(userId, orderId);
		mine.set(orderId, doorId);
		(this.doorHolders.get(doorId) ?? this.doorHolders.set(doorId, new Map()).get(doorId)!).set(orderId, userId);
		if (mine.size > MAX_TRACKED_ORDERS) this.untrack(userId, mine.keys().next().value!);
	}

	private untrack(userId: string, orderId: string) {
		const mine = this.ordersOf.get(userId);
		const doorId = mine?.get(orderId);
		if (doorId === undefined) return;
		mine!.delete(orderId);
		if (!mine!.size) this.ordersOf.delete(userId);
		const holders = this.doorHolders.get(doorId);
		if (holders?.delete(orderId) && !holders.size) this.doorHolders.delete(doorId);
	}

	private forgetUser(userId: string) {
		for (const orderId of [...(this.ordersOf.get(userId)?.keys() ?? [])]) this.untrack(userId, orderId);
	}
}
