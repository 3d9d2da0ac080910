/**
 * The gateway's JSON body reader, in place of body-parser.
 *
 * Every public route is reached by people who mean harm, so a body is
 * refused with a 4xx before anything builds on it when it is: larger than the
 * limit (also after decompression), in an encoding or charset we do not
 * speak, not valid UTF-8, nested deeper than any request of API.md needs, an
 * object with too many or duplicate keys (two parsers could disagree on which
 * one wins), or carrying a `__proto__`, `constructor` or `prototype` key
 * anywhere (those reach prototypes when a body is merged with Object.assign).
 * The checks are one linear scan of the text before `JSON.parse`, so a hostile
 * body costs no more than reading it. The raw bytes stay on the request for
 * routes that verify a signature over them.
 */
import zlib from "node:zlib";
import type { IncomingMessage, ServerResponse } from "node:http";
import getRawBody from "raw-body";
import { Errors } from "moleculer";
import { ErrorTypes } from "../../types/errors";

export interface JsonLimits {
	maxBytes: number;
	maxDepth: number;
	maxKeys: number;
	maxItems: number;
}

/** Deep enough for every body of API.md (the deepest, `pricing`, is 3), with room to grow. */
export const DEFAULT_JSON_LIMITS: Omit<JsonLimits, "maxBytes"> = { maxDepth: 16, maxKeys: 200, maxItems: 1000 };

export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

export interface BodyProblem {
	status: 400 | 413 | 415 | 422;
	type: string;
	message: string;
	field?: string;
}

const { MoleculerClientError, ValidationError } = Errors;

export function bodyError(p: BodyProblem): Error {
	if (p.status === 422) {
		return new ValidationError(p.message, ErrorTypes.VALIDATION_ERROR, [{ type: "forbiddenKey", field: p.field, message: p.message }]);
	}
	return new MoleculerClientError(p.message, p.status, p.type);
}

const invalidBody = (message: string): BodyProblem => ({ status: 400, type: ErrorTypes.INVALID_REQUEST_BODY, message });

const isWhitespace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/**
 * Scans JSON text for what `JSON.parse` would accept but we must not: excessive
 * nesting, too many keys or items, duplicate and prototype-reaching keys.
 * Syntax itself is left to `JSON.parse`; on malformed text this returns null or
 * a problem, and it never throws.
 */
export function scanJson(text: string, lim: Omit<JsonLimits, "maxBytes">): BodyProblem | null {
	const n = text.length;
	// One entry per open container: the keys seen (object) or null (array), and its item count.
	const keys: (Set<string> | null)[] = [];
	const items: number[] = [];
	for (let i = 0; i < n; i++) {
		const c = text.charCodeAt(i);
		if (c === 34 /* " */) {
			let j = i + 1;
			let escaped = false;
			while (j < n) {
				const d = text.charCodeAt(j);
				if (d === 92 /* \ */) {
					escaped = true;
					j += 2;
					continue;
				}
				if (d === 34) break;
				j++;
			}
			const own = keys.length ? keys[keys.length - 1] : null;
			if (own) {
				let k = j + 1;
				while (k < n && isWhitespace(text.charCodeAt(k))) k++;
				if (text.charCodeAt(k) === 58 /* : */) {
					let key = text.slice(i + 1, j);
					if (escaped) {
						try {
							key = JSON.parse(text.slice(i, j + 1)) as string;
						} catch {
							return invalidBody("Request body is not valid JSON");
						}
					}
					if (FORBIDDEN_KEYS.has(key)) {
						return { status: 422, type: ErrorTypes.VALIDATION_ERROR, field: key, message: `The key '${key}' is not allowed` };
					}
					if (own.has(key)) return invalidBody(`Request body repeats the key '${key.slice(0, 64)}'`);
					if (own.size >= lim.maxKeys) return invalidBody(`Request body has an object with more than ${lim.maxKeys} keys`);
					own.add(key);
				}
			}
			i = j;
		} else if (c === 123 /* { */ || c === 91 /* [ */) {
			if (keys.length >= lim.maxDepth) return invalidBody(`Request body is nested deeper than ${lim.maxDepth} levels`);
			keys.push(c === 123 ? new Set() : null);
			items.push(0);
		} else if (c === 125 /* } */ || c === 93 /* ] */) {
			keys.pop();
			items.pop();
		} else if (c === 44 /* , */ && items.length && keys[keys.length - 1] === null) {
			if (++items[items.length - 1] >= lim.maxItems) return invalidBody(`Request body has an array with more than ${lim.maxItems} items`);
		}
	}
	return null;
}

/** Parses a complete body (already decoded text) into a JSON object, or names the problem. */
export function parseJsonObject(text: string, lim: Omit<JsonLimits, "maxBytes">): { ok: true; value: Record<string, unknown> } | { ok: false; problem: BodyProblem } {
	const problem = scanJson(text, lim);
	if (problem) return { ok: false, problem };
	let value: unknown;
	try {
		value = JSON.parse(text);
	} catch {
		return { ok: false, problem: invalidBody("Request body is not valid JSON") };
	}
	if (value === null || typeof value !== "object" || Array.isArray(value)) {
		return { ok: false, problem: invalidBody("Request body must be a JSON object") };
	}
	return { ok: true, value: value as Record<string, unknown> };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

type Decompress = (buf: Buffer, opts: zlib.ZlibOptions & zlib.BrotliOptions, cb: (err: Error | null, out: Buffer) => void) => void;
const DECOMPRESSORS: Record<string, Decompress> = {
	gzip: zlib.gunzip,
	deflate: zlib.inflate,
	br: zlib.brotliDecompress,
};

async function decode(raw: Buffer, encoding: string, maxBytes: number): Promise<Buffer> {
	if (encoding === "identity") return raw;
	const decompress = DECOMPRESSORS[encoding];
	return new Promise<Buffer>((resolve, reject) => {
		decompress(raw, { maxOutputLength: maxBytes }, (err, out) => {
			if (!err) return resolve(out);
			reject(
				(err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE"
					? bodyError({ status: 413, type: ErrorTypes.PAYLOAD_TOO_LARGE, message: "Request body is too large once decompressed" })
					: bodyError(invalidBody(`Request body is not valid ${encoding} data`)),
			);
		});
	});
}

export interface BodyRequest extends IncomingMessage {
	body?: Record<string, unknown>;
	/** The bytes as received (after content-encoding), for signature checks. */
	rawBody?: Buffer;
}

const BODYLESS = new Set(["GET", "HEAD", "OPTIONS"]);
const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json$/;

/** Whether there is a body to read (a GET, HEAD or OPTIONS never has one for us). */
function carriesBody(req: BodyRequest): boolean {
	if (BODYLESS.has(req.method ?? "")) return false;
	const length = req.headers["content-length"];
	return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** Reads, bounds and parses the body; `{}` when there is none. */
export async function readJsonBody(req: BodyRequest, limits: JsonLimits): Promise<Record<string, unknown>> {
	if (!carriesBody(req)) return {};
	const length = req.headers["content-length"];

	const [mediaType, ...params] = String(req.headers["content-type"] ?? "").toLowerCase().split(";");
	if (!JSON_MEDIA_TYPE.test(mediaType.trim())) {
		throw bodyError({ status: 415, type: ErrorTypes.UNSUPPORTED_MEDIA_TYPE, message: "Content-Type must be application/json" });
	}
	const charset = params.map(p => p.trim()).find(p => p.startsWith("charset="))?.slice(8).replace(/"/g, "") ?? "utf-8";
	if (charset !== "utf-8" && charset !== "utf8") {
		throw bodyError({ status: 415, type: ErrorTypes.UNSUPPORTED_MEDIA_TYPE, message: "The body must be UTF-8" });
	}
	const encoding = String(req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
	if (encoding !== "identity" && !DECOMPRESSORS[encoding]) {
		throw bodyError({ status: 415, type: ErrorTypes.UNSUPPORTED_MEDIA_TYPE, message: "Content-Encoding must be gzip, deflate, br or identity" });
	}

	let raw: Buffer;
	try {
		raw = await getRawBody(req, { limit: limits.maxBytes, length: encoding === "identity" ? length : undefined });
	} catch (err) {
		const type = (err as { type?: string }).type;
		if (type === "entity.too.large") throw bodyError({ status: 413, type: ErrorTypes.PAYLOAD_TOO_LARGE, message: "Request body is too large" });
		throw bodyError(invalidBody(type === "request.aborted" ? "Request body was cut short" : "Request body could not be read"));
	}
	const bytes = await decode(raw, encoding, limits.maxBytes);
	let text: string;
	try {
		text = utf8.decode(bytes);
	} catch {
		throw bodyError(invalidBody("Request body is not valid UTF-8"));
	}
	if (text.trim() === "") return {};
	const parsed = parseJsonObject(text, limits);
	if (!parsed.ok) throw bodyError(parsed.problem);
	req.rawBody = bytes;
	return parsed.value;
}

/** moleculer-web route middleware: sets `req.body` (and `req.rawBody`) or fails the request with a 4xx. */
export function jsonBody(limits: JsonLimits) {
	return (req: BodyRequest, _res: ServerResponse, next: (err?: unknown) => void) => {
		// Most requests have no body: answered at once, without a promise and a turn of the microtask queue.
		if (!carriesBody(req)) {
			req.body = {};
			return next();
		}
		readJsonBody(req, limits).then(
			body => {
				req.body = body;
				next();
			},
			next,
		);
	};
}
