/**
 * One series of a Moleculer metric, found once and then updated in place: no
 * label object, hash or lookup per update. Used by the lean replacement of
 * Moleculer's metrics middleware and by the business metrics' hot paths.
 * The metric marks itself dirty so the next scrape renders it.
 */

// Moleculer's metric objects, as far as they are used here (their typings hide the values).
export interface SeriesItem {
	value: number;
	sum: number;
	count: number;
	lastValue: number | null;
	bucketValues?: Record<string, number>;
}
export interface MetricLike {
	type: string;
	labelNames: string[];
	buckets?: number[];
	dirty: boolean;
	values: Map<string, SeriesItem>;
	get(labels: Record<string, unknown> | null): SeriesItem | undefined;
	set(value: number, labels: Record<string, unknown> | null): SeriesItem;
	hashingLabels(labels: Record<string, unknown> | null): string;
	resetItem(item: { labels: Record<string, unknown> }): SeriesItem;
}

export interface Series {
	add(v: number): void;
	set(v: number): void;
	observe(v: number): void;
}

export const NO_SERIES: Series = { add() {}, set() {}, observe() {} };

class BoundSeries implements Series {
	/** The bucket bounds as the item's keys, made once (a number key would be turned into a string per call). */
	private readonly keys: string[];
	private readonly bounds: number[];

	constructor(
		private readonly metric: MetricLike,
		private readonly item: SeriesItem,
	) {
		this.bounds = metric.buckets ?? [];
		this.keys = this.bounds.map(String);
	}

	add(v: number): void {
		this.item.value += v;
		this.metric.dirty = true;
	}

	set(v: number): void {
		this.item.value = v;
		this.metric.dirty = true;
	}

	observe(v: number): void {
		const item = this.item;
		item.sum += v;
		item.count++;
		item.lastValue = v;
		const counts = item.bucketValues;
		if (counts) {
			// Cumulative buckets: every bound from the first one ≥ v up.
			for (let i = this.bounds.length - 1; i >= 0 && v <= this.bounds[i]; i--) counts[this.keys[i]]++;
		}
		this.metric.dirty = true;
	}
}

/** The series of `labels`, created (and shown, at 0) when it does not exist yet. */
export function bindSeries(metric: MetricLike, labels: Record<string, unknown> | null): Series {
	let item = metric.get(labels);
	if (!item) {
		if (metric.type === "histogram") {
			// Moleculer's histogram creates its item only on the first observation: make it empty now.
			const picked: Record<string, unknown> = {};
			for (const l of metric.labelNames) if (labels && l in labels) picked[l] = labels[l];
			item = metric.resetItem({ labels: picked });
			metric.values.set(metric.hashingLabels(labels), item);
			metric.dirty = true;
		} else {
			item = metric.set(0, labels);
		}
	}
	return new BoundSeries(metric, item);
}
