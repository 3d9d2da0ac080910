import { Readable } from "node:stream";
import zlib from "node:zlib";
import { DEFAULT_JSON_LIMITS, parseJsonObject, readJsonBody, scanJson, type BodyRequest } from "../../services/api/json-body";
import { StrictValidator } from "../../lib/strict-validator";

const lim = DEFAULT_JSON_LIMITS;
const nest = (depth: number, open = "{\"a\":", close = "}") => open.repeat(depth) + "1" + close.repeat(depth);

describe("JSON body scan (before JSON.parse)", () => {
	it("accepts ordinary bodies, nesting up to the limit, strings with brackets and escapes", () => {
		expect(parseJsonObject('{"login":"13800138000","password":"p{[\\"]}"}', lim)).toEqual({ ok: true, value: { login: "13800138000", password: 'p{["]}' } });
		expect(scanJson(nest(lim.maxDepth), lim)).toBeNull();
		expect(scanJson('{"doors":[{"no":1,"size":"M"},{"no":2,"size":"L"}],"pricing":{"S":{"firstFen":500}}}', lim)).toBeNull();
	});

	it("refuses nesting deeper than the limit, of objects and of arrays, in linear time", () => {
		expect(scanJson(nest(lim.maxDepth + 1), lim)).toMatchObject({ status: 400, type: "INVALID_REQUEST_BODY" });
		expect(scanJson(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`, lim)).toMatchObject({ status: 400 });
		expect(parseJsonObject(`{"login":${nest(6000)},"password":"x"}`, lim)).toMatchObject({ ok: false, problem: { status: 400 } });
	});

	it("refuses __proto__, constructor and prototype keys anywhere, also when escaped", () => {
		for (const body of ['{"__proto__":{"roles":["admin"]}}', '{"a":{"constructor":{"prototype":1}}}', '{"a":[{"prototype":1}]}', '{"\\u005f_proto__":1}']) {
			expect(scanJson(body, lim)).toMatchObject({ status: 422, type: "VALIDATION_ERROR" });
		}
		// As values they are just text.
		expect(scanJson('{"name":"__proto__","tags":["constructor"]}', lim)).toBeNull();
	});

	it("refuses duplicate keys (parsers disagree on which wins), too many keys and too many items", () => {
		expect(scanJson('{"phone":"1","phone":"2"}', lim)).toMatchObject({ status: 400 });
		expect(scanJson('{"a":{"x":1},"b":{"x":1}}', lim)).toBeNull();
		const wide = `{${Array.from({ length: lim.maxKeys + 1 }, (_, i) => `"k${i}":1`).join(",")}}`;
		expect(scanJson(wide, lim)).toMatchObject({ status: 400 });
		expect(scanJson(`{"a":[${Array(lim.maxItems).fill(0).join(",")}]}`, lim)).toBeNull();
		expect(scanJson(`{"a":[${Array(lim.maxItems + 1).fill(0).join(",")}]}`, lim)).toMatchObject({ status: 400 });
	});

	it("never throws on malformed text, and JSON.parse then names it", () => {
		for (const text of ['{"a', '{"a":"\\', "}}}]]]", '{"a":1,}', '"just a string"', "[1,2]", "null", "\u0000"]) {
			expect(() => scanJson(text, lim)).not.toThrow();
			expect(parseJsonObject(text, lim)).toMatchObject({ ok: false, problem: { status: 400 } });
		}
	});
});

describe("JSON body reading", () => {
	const request = (body: Buffer | string, headers: Record<string, string>): BodyRequest => {
		const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
		const req = Readable.from([buf]) as unknown as BodyRequest;
		Object.assign(req, { method: "POST", headers: { "content-length": String(buf.length), ...headers } });
		return req;
	};
	const read = (body: Buffer | string, headers: Record<string, string> = { "content-type": "application/json" }) =>
		readJsonBody(request(body, headers), { ...lim, maxBytes: 1024 });

	it("reads JSON, keeps the raw bytes, and decompresses what it is told is compressed", async () => {
		const req = request('{"a":1}', { "content-type": "application/json; charset=utf-8" });
		expect(await readJsonBody(req, { ...lim, maxBytes: 1024 })).toEqual({ a: 1 });
		expect(req.rawBody?.toString()).toBe('{"a":1}');
		expect(await read(zlib.gzipSync('{"a":2}'), { "content-type": "application/json", "content-encoding": "gzip" })).toEqual({ a: 2 });
		expect(await read(zlib.brotliCompressSync('{"a":3}'), { "content-type": "application/json", "content-encoding": "br" })).toEqual({ a: 3 });
	});

	it("answers a bad or unknown encoding, a wrong type or charset, invalid UTF-8 and oversize with 4xx", async () => {
		await expect(read('{"a":1}', { "content-type": "application/json", "content-encoding": "gzip" })).rejects.toMatchObject({ code: 400 });
		await expect(read("junk", { "content-type": "application/json", "content-encoding": "br" })).rejects.toMatchObject({ code: 400 });
		await expect(read('{"a":1}', { "content-type": "application/json", "content-encoding": "compress" })).rejects.toMatchObject({ code: 415 });
		await expect(read('{"a":1}', { "content-type": "text/plain" })).rejects.toMatchObject({ code: 415 });
		await expect(read('{"a":1}', { "content-type": "application/json; charset=latin1" })).rejects.toMatchObject({ code: 415 });
		await expect(read(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]))).rejects.toMatchObject({ code: 400 });
		await expect(read(`{"a":"${"x".repeat(2000)}"}`)).rejects.toMatchObject({ code: 413 });
		// A zip bomb is stopped at the limit of the decompressed size.
		await expect(read(zlib.gzipSync(`{"a":"${"x".repeat(1_000_000)}"}`), { "content-type": "application/json", "content-encoding": "gzip" })).rejects.toMatchObject({ code: 413 });
	});
});

describe("numbers from query strings", () => {
	const check = new StrictValidator().compile({ lat: { type: "number", min: -90, max: 90, convert: true } }) as (p: Record<string, unknown>) => true | unknown[];
	it("converts decimal numerals only", () => {
		for (const ok of ["31.23", "-0.5", "12", "1e1", ".5"]) {
			const p = { lat: ok };
			expect(check(p)).toBe(true);
			expect(p.lat).toBe(Number(ok));
		}
		for (const bad of ["", " ", "0x1F", "0b11", "1_0", "Infinity", "NaN", "12abc", " 12"]) expect(check({ lat: bad })).not.toBe(true);
		for (const bad of [[], [5], true, null, {}]) expect(check({ lat: bad })).not.toBe(true);
	});
});
