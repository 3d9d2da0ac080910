/**
 * One collection behind a moleculer-db adapter (NeDB or mongoose), with the
 * few operations the services need, made to behave identically on both:
 * plain objects out, platform-chosen string ids, unique indexes enforced,
 * conditional updates that report how many documents they changed (the
 * building block of every compare-and-set in the platform).
 */
import crypto from "node:crypto";
import type { ServiceBroker } from "moleculer";

type LoggerInstance = ServiceBroker["logger"];
import type { EntityDefinition } from "./db.mixin";

export interface FindParams {
	query?: Record<string, unknown>;
	sort?: string | string[];
	limit?: number;
	offset?: number;
}

interface AdapterLike {
	init(broker: ServiceBroker, service: unknown): void;
	connect(): Promise<void>;
	disconnect(): Promise<void>;
	entityToObject(doc: unknown): any;
	insert(doc: unknown): Promise<unknown>;
	insertMany(docs: unknown[]): Promise<unknown>;
	findById(id: string): Promise<unknown>;
	findOne(query: unknown): Promise<unknown>;
	find(params: FindParams): Promise<unknown[]>;
	count(params: FindParams): Promise<number>;
	updateMany(query: unknown, update: unknown): Promise<number>;
	updateById(id: string, update: unknown): Promise<unknown>;
	removeMany(query: unknown): Promise<unknown>;
	clear(): Promise<unknown>;
	db?: any;
	model?: any;
}

export class Repository<T extends { _id: string }> {
	private readonly adapter: AdapterLike;

	constructor(
		readonly entity: EntityDefinition,
		adapter: unknown,
		private readonly opts: { broker: ServiceBroker; logger: LoggerInstance; model?: unknown; persistent: boolean },
	) {
		this.adapter = adapter as AdapterLike;
		// The adapters expect a moleculer-db service; they read only its schema, settings and logger.
		this.adapter.init(opts.broker, { schema: { model: opts.model }, settings: {}, logger: opts.logger });
	}

	async connect(): Promise<void> {
		await this.adapter.connect();
		if (!this.adapter.model) useNativeNedbPromises(this.adapter.db);
		if (this.adapter.model) {
			await this.adapter.model.createIndexes();
			return;
		}
		for (const idx of this.entity.indexes ?? []) {
			const names = Object.keys(idx.fields);
			await this.adapter.db.ensureIndex({
				fieldName: names.length === 1 ? names[0] : names,
				unique: !!idx.unique,
				sparse: !!idx.sparse,
			});
		}
		// NeDB appends every write to its file; rewrite it now and then so it does not grow forever.
		if (this.opts.persistent) this.adapter.db.setAutocompactionInterval(10 * 60_000);
	}

	async disconnect(): Promise<void> {
		if (this.adapter.db && !this.adapter.model && this.opts.persistent) {
			this.adapter.db.stopAutocompaction();
			await this.adapter.db.compactDatafileAsync();
		}
		await this.adapter.disconnect();
	}

	newId(): string {
		return `${this.entity.idPrefix}_${crypto.randomBytes(12).toString("base64url")}`;
	}

	/** The mongoose adapter's `entityToObject` answers with a promise, NeDB's with the object itself. */
	private async plain(doc: unknown): Promise<T | null> {
		if (doc == null) return null;
		const obj = await this.adapter.entityToObject(doc);
		obj._id = String(obj._id);
		return obj as T;
	}

	/** Insert; `_id` is generated unless given. Throws a duplicate-key error on a unique index clash. */
	async insert(doc: Omit<T, "_id"> & { _id?: string }): Promise<T> {
		const withId = { ...doc, _id: doc._id ?? this.newId() };
		return (await this.plain(await this.adapter.insert(withId)))!;
	}

	/**
	 * Insert a batch in one write (NeDB: one append to the file; Mongo: one
	 * `insertMany` bulk write); `_id`s are generated where not given. Returns
	 * how many were stored. A unique index clash throws a duplicate-key error;
	 * NeDB then stores none of the batch, Mongo (ordered) keeps the documents
	 * before the clashing one.
	 */
	async insertMany(docs: (Omit<T, "_id"> & { _id?: string })[]): Promise<number> {
		if (!docs.length) return 0;
		const withIds = docs.map(doc => ({ ...doc, _id: doc._id ?? this.newId() }));
		// The mongoose adapter's own insertMany is `Model.create`, one round trip per document.
		const res = this.adapter.model
			? await this.adapter.model.insertMany(withIds, { ordered: true })
			: await this.adapter.insertMany(withIds);
		return Array.isArray(res) ? res.length : withIds.length;
	}

	async findById(id: string): Promise<T | null> {
		return this.plain(await this.adapter.findById(id));
	}

	async findOne(query: Record<string, unknown>): Promise<T | null> {
		return this.plain(await this.adapter.findOne(query));
	}

	async find(params: FindParams = {}): Promise<T[]> {
		// Both adapters take the sort as a list of fields ("-n" = descending).
		let sort = typeof params.sort === "string" ? params.sort.split(/[\s,]+/).filter(Boolean) : params.sort;
		// NeDB sorts every matching document before it applies the limit, which makes paging
		// through a large collection by id quadratic. Its `_id` index already yields documents
		// in id order for an `_id` range (or no query at all), so that sort is left out there.
		if (!this.adapter.model && sort?.length === 1 && sort[0] === "_id" && Object.keys(params.query ?? {}).every(k => k === "_id")) {
			sort = undefined;
		}
		const docs = await this.adapter.find({ ...params, sort });
		return Promise.all(docs.map(async d => (await this.plain(d))!));
	}

	/**
	 * The ids of every matching document, in id order, without their bodies: for set arithmetic the
	 * stores do badly (NeDB's `$nin` compares each document with the whole list: quadratic).
	 */
	async ids(query: Record<string, unknown> = {}): Promise<string[]> {
		if (this.adapter.model) {
			const docs: { _id: unknown }[] = await this.adapter.model.find(query, { _id: 1 }).sort({ _id: 1 }).lean();
			return docs.map(d => String(d._id));
		}
		// NeDB copies every matching document before it projects (1.4 s for 100 000 cabinets); with no
		// query, its own list of documents (getAllData, no copies) is read instead (20 ms).
		const docs: { _id: string }[] = Object.keys(query).length ? await this.adapter.db.findAsync(query, { _id: 1 }) : this.adapter.db.getAllData();
		return docs.map(d => d._id).sort();
	}

	count(query: Record<string, unknown> = {}): Promise<number> {
		return this.adapter.count({ query });
	}

	/** Conditional update (compare-and-set): the number of documents that matched `query` and were changed. */
	async updateWhere(query: Record<string, unknown>, update: Record<string, unknown>): Promise<number> {
		return Number(await this.adapter.updateMany(query, update)) || 0;
	}

	/** Sets fields of the document with this id, creating it when there is none. */
	async upsertById(id: string, set: Record<string, unknown>): Promise<void> {
		if (this.adapter.model) await this.adapter.model.updateOne({ _id: id }, { $set: set }, { upsert: true });
		else await this.adapter.db.update({ _id: id }, { $set: set }, { upsert: true });
	}

	async updateById(id: string, update: Record<string, unknown>): Promise<T | null> {
		return this.plain(await this.adapter.updateById(id, update));
	}

	async removeWhere(query: Record<string, unknown>): Promise<number> {
		const res = (await this.adapter.removeMany(query)) as number | { deletedCount?: number };
		return typeof res === "number" ? res : Number(res?.deletedCount ?? 0);
	}

	/** Test helper: empty the collection. */
	async clear(): Promise<void> {
		await this.adapter.clear();
	}

	static isDuplicateKeyError(err: unknown): boolean {
		const e = err as { code?: number; errorType?: string; writeErrors?: { code?: number }[] } | undefined;
		return e?.code === 11000 || e?.errorType === "uniqueViolated" || e?.writeErrors?.[0]?.code === 11000;
	}
}

/**
 * moleculer-db's NeDB adapter wraps the datastore's methods in util.promisify,
 * `update` even around a function that returns a promise — Node then builds a
 * DEP0174 deprecation warning on every write (and prints it). @seald-io/nedb
 * has promise methods of its own: use those, with the answers the adapter
 * expects (`update` → [numAffected, affectedDocuments]).
 */
function useNativeNedbPromises(db: any): void {
	if (!db || typeof db.updateAsync !== "function") return;
	db.insert = (doc: unknown) => db.insertAsync(doc);
	db.findOne = (query: unknown, projection?: unknown) => db.findOneAsync(query, projection);
	db.count = (query: unknown) => db.countAsync(query);
	db.remove = (query: unknown, options?: unknown) => db.removeAsync(query, options);
	db.ensureIndex = (options: unknown) => db.ensureIndexAsync(options);
	db.removeIndex = (field: string) => db.removeIndexAsync(field);
	db.update = (query: unknown, update: unknown, options?: unknown) =>
		db.updateAsync(query, update, options).then((r: { numAffected: number; affectedDocuments: unknown }) => [r.numAffected, r.affectedDocuments]);
}
