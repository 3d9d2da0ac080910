/**
 * The platform's business metrics: what happens to doors, cabinets, MQTT
 * links, orders, money, alerts and nearby searches, beside Moleculer's
 * per-action series. They live in the broker's metrics registry, so every
 * node's Prometheus reporter exports the ones its services count (with its
 * `nodeID` label), and the README's "Metrics" section lists them.
 *
 * Labels are few-valued only (a result, a state, a reason, a provider):
 * never a door, cabinet, user or order id. A label value that comes from
 * elsewhere (an error type from the mesh) goes through `labelValue` first.
 *
 * `meter(broker, spec)` registers a family once per broker and answers a
 * `Meter`; with metrics disabled it answers one that does nothing, so a call
 * site never checks and never throws. Rare events (a door open, a payment)
 * take Moleculer's own path (`inc`, `set`, `observe`); a hot path binds its
 * series once (`bind`) and updates its value in place: no label object, no
 * hashing, no timestamp per call. The Prometheus reporter reads values on
 * scrape, so nothing else is needed.
 */
import type { ServiceBroker } from "moleculer";
import { bindSeries, NO_SERIES, type MetricLike as BaseMetric, type Series } from "./metric-series";
export type { Series } from "./metric-series";

export type MetricType = "counter" | "gauge" | "histogram";
export type Labels = Readonly<Record<string, string>>;

export interface MetricSpec {
	/** Registry name; Prometheus shows it with `_` for `.` (`doors.opens.total` → `doors_opens_total`). */
	name: string;
	type: MetricType;
	help: string;
	labelNames: readonly string[];
	unit?: string;
	buckets?: readonly number[];
}

/** Cabinet command → ack: 1 ms … 10 s. */
const ROUND_TRIP_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
/** A nearby search on its replica: 20 µs … 100 ms. */
const NEARBY_BUCKETS = [0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100];

/** Every business family, by the name its call site uses. */
export const BUSINESS_METRICS = {
	doorOpens: {
		name: "doors.opens.total", type: "counter", labelNames: ["purpose", "result"],
		help: "Door opens finished by the door actors, by purpose (deposit, pickup, operator) and result (ok, or the error type)",
	},
	commandRoundTrip: {
		name: "doors.command.roundtrip.ms", type: "histogram", labelNames: ["action"], unit: "millisecond", buckets: ROUND_TRIP_BUCKETS,
		help: "Cabinet command sent → its ack received, in ms (commands that timed out are not in it)",
	},
	cabinetsOnline: {
		name: "doors.cabinets.online", type: "gauge", labelNames: [],
		help: "Cabinets online among those this doors node commands",
	},
	mqttConnections: {
		name: "mqtt.connections", type: "gauge", labelNames: ["kind"],
		help: "Authenticated connections to the embedded MQTT broker, by kind (cabinet, platform)",
	},
	mqttRefused: {
		name: "mqtt.connections.refused.total", type: "counter", labelNames: ["reason"],
		help: "MQTT connections refused or closed by the platform, by reason",
	},
	mqttDropped: {
		name: "mqtt.messages.dropped.total", type: "counter", labelNames: ["reason"],
		help: "MQTT messages and subscriptions dropped or refused, by reason",
	},
	mqttBridgeUp: {
		name: "mqtt.bridge.connected", type: "gauge", labelNames: [],
		help: "1 while this hardware node's MQTT client (the bridge to the cabinets) is connected",
	},
	orderTransitions: {
		name: "orders.transitions.total", type: "counter", labelNames: ["to"],
		help: "Order status changes written, by the status entered",
	},
	ordersCurrent: {
		name: "orders.current", type: "gauge", labelNames: ["status"],
		help: "Orders in each open status, counted every 30 s (the same on every orders node: take max, not sum)",
	},
	paymentsCaptured: {
		name: "billing.payments.captured.total", type: "counter", labelNames: ["provider"],
		help: "Payments captured, by provider",
	},
	paymentsCapturedFen: {
		name: "billing.payments.captured.fen.total", type: "counter", labelNames: ["provider"], unit: "fen",
		help: "Money captured in fen, by provider",
	},
	refunds: {
		name: "billing.refunds.total", type: "counter", labelNames: ["provider"],
		help: "Refunds accepted, by provider",
	},
	refundsFen: {
		name: "billing.refunds.fen.total", type: "counter", labelNames: ["provider"], unit: "fen",
		help: "Money refunded in fen, by provider",
	},
	alertsFired: {
		name: "alerts.fired.total", type: "counter", labelNames: ["severity"],
		help: "Alerts that went firing, by severity",
	},
	alertsSent: {
		name: "alerts.notifications.total", type: "counter", labelNames: ["channel", "result"],
		help: "Alert messages sent, by channel and result (sent, retry, throttled, misconfigured, disabled, rejected)",
	},
	nearbyLatency: {
		name: "geo.nearby.duration.ms", type: "histogram", labelNames: [], unit: "millisecond", buckets: NEARBY_BUCKETS,
		help: "Nearby searches on this geo replica, in ms (cache lookup, candidates, encoding)",
	},
	nearbyCache: {
		name: "geo.nearby.cache", type: "counter", labelNames: ["result"],
		help: "Nearby answers from the cache (hit) or computed (miss)",
	},
} as const satisfies Record<string, MetricSpec>;

const SAFE_VALUE = /^[A-Za-z][A-Za-z0-9_.-]{0,39}$/;

/** A label value from outside (an error type, say): itself when it looks like a name, else "OTHER". Bounds cardinality. */
export function labelValue(v: unknown): string {
	return typeof v === "string" && SAFE_VALUE.test(v) ? v : "OTHER";
}

/** A door open's result label: ok, or the error's type. */
export function openResult(err: unknown): string {
	if (err === undefined || err === null) return "ok";
	return labelValue((err as { type?: unknown }).type);
}

type MetricLike = BaseMetric & {
	increment(labels: Labels | null, value: number): unknown;
	observe(value: number, labels: Labels | null): unknown;
};
interface RegistryLike {
	getMetric(name: string): MetricLike | null;
	register(opts: object): MetricLike | null;
}

/** One family on one broker. */
export interface Meter {
	inc(labels?: Labels | null, by?: number): void;
	set(value: number, labels?: Labels | null): void;
	observe(value: number, labels?: Labels | null): void;
	/** The series of these labels, found (and shown, at 0) now; for hot paths and for series that should exist before their first event. */
	bind(labels?: Labels | null): Series;
}

const NO_METER: Meter = { inc() {}, set() {}, observe() {}, bind: () => NO_SERIES };

class RegisteredMeter implements Meter {
	constructor(private readonly metric: MetricLike) {}

	inc(labels: Labels | null = null, by = 1): void {
		if (Number.isFinite(by)) this.metric.increment(labels, by);
	}

	set(value: number, labels: Labels | null = null): void {
		if (Number.isFinite(value)) this.metric.set(value, labels);
	}

	observe(value: number, labels: Labels | null = null): void {
		if (Number.isFinite(value)) this.metric.observe(value, labels);
	}

	bind(labels: Labels | null = null): Series {
		return bindSeries(this.metric, labels);
	}
}

/** The family on this broker, registered on first use; a meter that does nothing when metrics are off. */
export function meter(broker: ServiceBroker, spec: MetricSpec): Meter {
	if (!broker.isMetricsEnabled()) return NO_METER;
	const registry = broker.metrics as unknown as RegistryLike;
	let metric = registry.getMetric(spec.name);
	if (!metric) {
		metric = registry.register({
			name: spec.name, type: spec.type, description: spec.help, labelNames: [...spec.labelNames], unit: spec.unit,
			...(spec.buckets ? { buckets: [...spec.buckets] } : {}),
		});
	}
	if (!metric || metric.type !== spec.type) return NO_METER;
	return new RegisteredMeter(metric);
}

/** Every family of `specs` on this broker, by the same keys. */
export function meters<K extends string>(broker: ServiceBroker, specs: Record<K, MetricSpec>): Record<K, Meter> {
	const out = {} as Record<K, Meter>;
	for (const key of Object.keys(specs) as K[]) out[key] = meter(broker, specs[key]);
	return out;
}

/** True when an alert record went firing with this change (counted once per firing). */
export function wentFiring(prev: { state: string } | null | undefined, next: { state: string } | null | undefined): boolean {
	return !!next && next.state === "firing" && prev?.state !== "firing";
}
