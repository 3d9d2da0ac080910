/**
 * The JSON of a nearby answer, built from fragments of each candidate instead
 * of JSON.stringify over fresh row objects (the largest cost of a cached
 * answer). A candidate's fragments — everything but its distance and its
 * price for the size asked — are encoded once per candidate object: the
 * in-memory cache hands out the same objects until a change replaces them, so
 * a hit encodes only numbers. Byte for byte what JSON.stringify of the rows
 * gives (unit-tested); each fragment is itself JSON.stringify's output.
 * (fast-json-stringify would still encode every row on every answer.)
 */
import type { Size } from "../../domain/catalog";
import { fromFenOf, type NearbyCandidate } from "./read-model";

interface Fragments {
	/** `{"id":…,"name":…,"address":…,"lat":…,"lng":…,"distance":` */
	head: string;
	/** `,"available":{…},"fromFen":` */
	middle: string;
}

/**
 * Kept on the candidate itself under a symbol (JSON and the Redis cacher never
 * see it): a WeakMap over every cached candidate made garbage collection a
 * third of the CPU (its ephemeron tables are marked on every cycle).
 */
const FRAGMENTS = Symbol("nearby JSON fragments");
type WithFragments = NearbyCandidate & { [FRAGMENTS]?: Fragments };

function fragmentsOf(c: WithFragments): Fragments {
	let f = c[FRAGMENTS];
	if (!f) {
		const j = JSON.stringify;
		f = {
			head: `{"id":${j(c.id)},"name":${j(c.name)},"address":${j(c.address)},"lat":${j(c.lat)},"lng":${j(c.lng)},"distance":`,
			middle: `,"available":${j({ S: c.available.S, M: c.available.M, L: c.available.L })},"fromFen":`,
		};
		Object.defineProperty(c, FRAGMENTS, { value: f, enumerable: false });
	}
	return f;
}

/** `{"rows":[…]}` for the hits, nearest first, as GET /points/nearby answers. */
export function encodeNearby(hits: readonly { point: NearbyCandidate; distance: number }[], size: Size | undefined): string {
	let out = '{"rows":[';
	for (let i = 0; i < hits.length; i++) {
		const { point, distance } = hits[i];
		const f = fragmentsOf(point);
		out += `${i ? "," : ""}${f.head}${Math.round(distance)}${f.middle}${JSON.stringify(fromFenOf(point, size))}}`;
	}
	return `${out}]}`;
}
