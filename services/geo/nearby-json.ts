/**
 * The JSON of a nearby answer, built from fragments of each candidate instead
 * of JSON.stringify over fresh row objects (the largest cost of a cached
 * answer). A candidate's fragment — everything before its distance — is
 * encoded once per candidate object, which lives as long as its point's index
 * entry (read-model.ts), so an answer writes only numbers: the distance, the
 * free doors as of now and the price that follows from them. Byte for byte what JSON.stringify of the rows
 * gives (unit-tested); each fragment is itself JSON.stringify's output.
 * (fast-json-stringify would still encode every row on every answer.)
 */
import type { Size, SizeCounts } from "../../domain/catalog";
import { fromFenOf, type NearbyCandidate } from "./read-model";

interface Fragments {
	/** `{"id":…,"name":…,"address":…,"lat":…,"lng":…,"distance":` as UTF-8 */
	head: Buffer;
}

/**
 * Kept on the candidate itself under a symbol (JSON never sees it): a WeakMap
 * over every cached candidate made garbage collection a third of the CPU (its
 * ephemeron tables are marked on every cycle).
 */
const FRAGMENTS = Symbol("nearby JSON fragments");
type WithFragments = NearbyCandidate & { [FRAGMENTS]?: Fragments };

function fragmentsOf(c: WithFragments): Fragments {
	let f = c[FRAGMENTS];
	if (!f) {
		const j = JSON.stringify;
		f = {
			head: Buffer.from(`{"id":${j(c.id)},"name":${j(c.name)},"address":${j(c.address)},"lat":${j(c.lat)},"lng":${j(c.lng)},"distance":`),
		};
		Object.defineProperty(c, FRAGMENTS, { value: f, enumerable: false });
	}
	return f;
}

const OPEN = '{"rows":[';
const CLOSE = "]}";
const COMMA = 0x2c;

/**
 * `{"rows":[…]}` for the hits, nearest first, as GET /points/nearby answers,
 * as UTF-8 bytes: copied from the candidates' encoded fragments, with only the
 * numbers written per answer. A string built from pieces would be flattened
 * and encoded again by Node for every answer (a tenth of the CPU of a hit).
 * Free doors (and so the price shown) are the point's as of now (`availableNow`,
 * falling back to the candidate's): a cached candidate set stays valid through
 * door changes that do not decide whether a point is in it.
 */
export function encodeNearby(
	hits: readonly { point: NearbyCandidate; distance: number }[],
	size: Size | undefined,
	availableNow: (id: string) => SizeCounts | undefined = () => undefined,
): Buffer {
	const tails: string[] = new Array(hits.length);
	let total = OPEN.length + CLOSE.length;
	for (let i = 0; i < hits.length; i++) {
		const { point, distance } = hits[i];
		const a = availableNow(point.id) ?? point.available;
		const fen = JSON.stringify(fromFenOf({ available: a, firstFen: point.firstFen }, size));
		// JSON.stringify's spelling of the rest of the row: integers only.
		const tail = `${Math.round(distance)},"available":{"S":${a.S},"M":${a.M},"L":${a.L}},"fromFen":${fen}}`;
		tails[i] = tail;
		total += (i ? 1 : 0) + fragmentsOf(point).head.length + tail.length;
	}
	const out = Buffer.allocUnsafe(total);
	let at = out.write(OPEN, 0, "latin1");
	for (let i = 0; i < hits.length; i++) {
		if (i) out[at++] = COMMA;
		at += fragmentsOf(hits[i].point).head.copy(out, at);
		at += out.write(tails[i], at, "latin1");
	}
	out.write(CLOSE, at, "latin1");
	return out;
}
