/**
 * `Idempotency-Key` (API.md "Conventions"), kept in the service's own
 * collection. The first request with a key claims it (a unique insert), runs,
 * and stores its answer (status and body); a repeat with the same key and the
 * same body gets that answer again and runs nothing; the same key with another
 * body is 422 IDEMPOTENCY_KEY_REUSED; a repeat while the first still runs is
 * 409 IDEMPOTENCY_KEY_IN_USE. A request that fails gives its key back, so a
 * retry runs again (nothing was done: every operation behind it is a
 * compare-and-set). Keys are scoped to the caller and kept 24 h.
 */
import crypto from "node:crypto";
import type { Context } from "moleculer";
import type { EntityDefinition } from "./db.mixin";
import { Repository } from "./repository";
import { conflict, ErrorTypes } from "../types/errors";
import { Errors } from "moleculer";
import type { AppMeta } from "../types/auth";

export interface IdempotencyDoc {
	_id: string;
	hash: string;
	state: "running" | "done";
	status: number | null;
	/** Location header of the stored answer (a 201's). */
	location?: string;
	body: unknown;
	createdAt: Date;
	expiresAt: Date;
}

export const idempotencyEntity = (collection: string): EntityDefinition => ({
	collection,
	idPrefix: "idk",
	fields: { hash: "string", state: "string", status: "number", location: "string", body: "object", createdAt: "date", expiresAt: "date" },
	indexes: [{ fields: { expiresAt: 1 } }],
});

const KEEP_MS = 24 * 3600_000;
/** A claim whose request died (a crash while running) is given up after this long. */
const STALE_RUNNING_MS = 5 * 60_000;

/** JSON with sorted keys: the same params give the same hash whatever their order. */
function canonical(v: unknown): string {
	if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
	if (v && typeof v === "object") return `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(",")}}`;
	return JSON.stringify(v) ?? "null";
}
const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

export class IdempotencyKeys {
	constructor(private readonly repo: Repository<IdempotencyDoc>, private readonly now: () => number = Date.now) {}

	/**
	 * Runs `fn` at most once per (caller, action, key). Without a key it just runs.
	 * `params` is what the body hash covers.
	 */
	async run<T>(ctx: Context<unknown, AppMeta>, action: string, params: unknown, fn: () => Promise<T>): Promise<T> {
		const key = ctx.meta.idempotencyKey;
		if (!key) return fn();
		const id = `${sha256(`${ctx.meta.user?.id ?? "anonymous"}\n${action}\n${key}`)}`;
		const hash = sha256(canonical(params));
		const now = new Date(this.now());
		try {
			await this.repo.insert({ _id: id, hash, state: "running", status: null, body: null, createdAt: now, expiresAt: new Date(now.getTime() + KEEP_MS) });
		} catch (err) {
			if (!Repository.isDuplicateKeyError(err)) throw err;
			const seen = await this.repo.findById(id);
			if (!seen) return this.run(ctx, action, params, fn); // given back meanwhile
			const stale = seen.expiresAt.getTime() <= now.getTime() || (seen.state === "running" && now.getTime() - new Date(seen.createdAt).getTime() > STALE_RUNNING_MS);
			if (stale && (await this.repo.removeWhere({ _id: id, hash: seen.hash, state: seen.state })) === 1) return this.run(ctx, action, params, fn);
			if (seen.hash !== hash) {
				throw new Errors.MoleculerClientError("This Idempotency-Key was used with a different request body", 422, ErrorTypes.IDEMPOTENCY_KEY_REUSED, { field: "Idempotency-Key" });
			}
			if (seen.state === "running") throw conflict("A request with this Idempotency-Key is still running; retry shortly", ErrorTypes.IDEMPOTENCY_KEY_IN_USE);
			if (seen.status) ctx.meta.$statusCode = seen.status;
			if (seen.location) ctx.meta.$location = seen.location;
			return seen.body as T;
		}
		let result: T;
		try {
			result = await fn();
		} catch (err) {
			await this.repo.removeWhere({ _id: id, state: "running" }).catch(() => undefined);
			throw err;
		}
		await this.repo.updateWhere({ _id: id }, { $set: { state: "done", status: ctx.meta.$statusCode ?? 200, ...(ctx.meta.$location ? { location: ctx.meta.$location } : {}), body: result ?? null } });
		return result;
	}

	/** Forgets expired keys. */
	async sweep(): Promise<number> {
		return this.repo.removeWhere({ expiresAt: { $lte: new Date(this.now()) } });
	}
}
