/**
 * The one place that chooses the storage adapter.
 *
 * - `MONGO_URI` set → moleculer-db-adapter-mongoose with a mongoose model
 *   built from the entity definition (same fields, same indexes);
 * - otherwise → moleculer-db's NeDB adapter, persisted to `DATA_DIR/<collection>.db`
 *   (or purely in memory when `dataDir` is `null`, for tests).
 *
 * A service may own several collections (users: users and sessions), so the
 * mixin gives it one `Repository` per entity in `this.repos` rather than
 * moleculer-db's single `this.adapter`; moleculer-db's generic CRUD actions
 * are not used at all, since they would publish every collection unvalidated.
 * A repository behaves the same on both adapters (the contract suite in
 * test/integration proves it) and returns plain objects with string ids
 * chosen by the platform.
 */
import path from "node:path";
import DbService from "moleculer-db";
import { Repository } from "./repository";
import { ensurePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from "../lib/private-files";
import { installNedbFileHandles } from "../lib/nedb-file-handles";
import { describeHolder, holdDataDir } from "../lib/data-dir-lock";
import MongooseAdapter from "moleculer-db-adapter-mongoose";
import mongoose from "mongoose";
import type { ServiceSchema } from "moleculer";

export type FieldType = "string" | "number" | "boolean" | "date" | "array" | "object";

export interface IndexDefinition {
	fields: Record<string, 1 | -1>;
	unique?: boolean;
	/** Documents without the field are not indexed (so many may lack it despite `unique`). */
	sparse?: boolean;
}

export interface EntityDefinition {
	collection: string;
	/** Id prefix, e.g. "usr" → "usr_8f3k…". */
	idPrefix: string;
	fields: Record<string, FieldType>;
	indexes?: IndexDefinition[];
}

export interface DbConfig {
	mongoUri?: string;
	/** Directory for NeDB files; `null` keeps NeDB in memory only. */
	dataDir: string | null;
}

const MONGOOSE_TYPES: Record<FieldType, unknown> = {
	string: String,
	number: Number,
	boolean: Boolean,
	date: Date,
	// `default: undefined`: mongoose would otherwise store `[]` for every array field a document lacks.
	array: { type: Array, default: undefined },
	object: mongoose.Schema.Types.Mixed,
};

/** The mongoose model of an entity; defined once per process (mongoose keeps a global registry). */
export function mongooseModelOf(entity: EntityDefinition): mongoose.Model<any> {
	const existing = mongoose.models[entity.collection];
	if (existing) return existing;
	const shape: Record<string, unknown> = { _id: { type: String, required: true } };
	for (const [name, type] of Object.entries(entity.fields)) {
		const t = MONGOOSE_TYPES[type];
		shape[name] = t && typeof t === "object" && "type" in t ? t : { type: t };
	}
	const schema = new mongoose.Schema(shape, {
		collection: entity.collection,
		versionKey: false,
		strict: true,
		minimize: false,
		autoIndex: false, // created explicitly in Repository.connect, so start-up waits for them
	});
	for (const idx of entity.indexes ?? []) schema.index(idx.fields, { unique: !!idx.unique, sparse: !!idx.sparse });
	return mongoose.model(entity.collection, schema);
}


/** The NeDB file of an entity in embedded mode. */
export function nedbFilename(entity: EntityDefinition, dataDir: string): string {
	return path.join(dataDir, `${entity.collection}.db`);
}

let mongooseConnecting: Promise<unknown> | null = null;

/**
 * The one process-wide mongoose connection, opened once: the adapters each
 * call mongoose.connect when they see it closed, so several services starting
 * together would open (and leak) several clients.
 */
export async function ensureMongoose(uri: string): Promise<void> {
	if (mongoose.connection.readyState === 1) return;
	mongooseConnecting ??= mongoose.connect(uri, { serverSelectionTimeoutMS: 5000 }).finally(() => (mongooseConnecting = null));
	await mongooseConnecting;
}

/** The adapter for one entity, chosen from configuration. */
export function createAdapter(entity: EntityDefinition, db: DbConfig): unknown {
	if (db.mongoUri) return new MongooseAdapter(db.mongoUri, { serverSelectionTimeoutMS: 5000 });
	if (db.dataDir === null) return new DbService.MemoryAdapter({ inMemoryOnly: true });
	ensurePrivateDir(db.dataDir);
	installNedbFileHandles();
	// NeDB rewrites its file on load and compaction, so an older 0644 file is 0600 after the first start.
	return new DbService.MemoryAdapter({ filename: nedbFilename(entity, db.dataDir), modes: { fileMode: PRIVATE_FILE_MODE, dirMode: PRIVATE_DIR_MODE } });
}

export interface DbMixinThis<E extends string> {
	repos: Record<E, Repository<any>>;
}

/**
 * Gives the service `this.repos.<name>` for each entity, connected before the
 * service's own `started` runs and closed when it stops.
 */
export function createDbMixin<E extends string>(entities: Record<E, EntityDefinition>, db: DbConfig): Partial<ServiceSchema> {
	return {
		created(this: any) {
			this.repos = {};
			for (const [name, entity] of Object.entries<EntityDefinition>(entities)) {
				const adapter = createAdapter(entity, db);
				this.repos[name] = new Repository(entity, adapter, {
					broker: this.broker,
					logger: this.logger,
					model: db.mongoUri ? mongooseModelOf(entity) : undefined,
					persistent: !db.mongoUri && db.dataDir !== null,
				});
			}
		},
		methods: {
			/** /ready (lib/readiness.ts): every collection of the service answers a read. */
			async checkReady(this: any) {
				for (const repo of Object.values<Repository<any>>(this.repos)) await repo.findById("ready-probe");
			},
		},
		async started(this: any) {
			if (db.mongoUri) await ensureMongoose(db.mongoUri);
			else if (db.dataDir !== null) {
				// Tools that write these files directly (npm run admin) see the mark and refuse.
				this.dataDirLock = holdDataDir(db.dataDir);
				const other = this.dataDirLock.replaced;
				if (other) this.logger.warn(`DATA_DIR ${db.dataDir} is also used by ${describeHolder(other)}: two processes writing the same NeDB files lose each other's writes`);
			}
			for (const repo of Object.values<Repository<any>>(this.repos)) await repo.connect();
		},
		async stopped(this: any) {
			for (const repo of Object.values<Repository<any>>(this.repos)) await repo.disconnect();
			this.dataDirLock?.release();
		},
	};
}
