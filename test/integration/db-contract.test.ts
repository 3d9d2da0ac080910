/**
 * The storage contract every service relies on, run against each adapter the
 * platform can be configured with: NeDB in memory, NeDB persisted to files
 * (embedded mode), and MongoDB through mongoose when MONGO_URI is set
 * (docker compose brings one up; this machine has no MongoDB server, so that
 * variant is reported as skipped here rather than faked).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ServiceBroker } from "moleculer";
import mongoose from "mongoose";
import { createAdapter, mongooseModelOf, type DbConfig, type EntityDefinition } from "../../mixins/db.mixin";
import { Repository } from "../../mixins/repository";

interface Thing {
	_id: string;
	code?: string;
	name: string;
	n: number;
	tags?: string[];
	at?: Date;
	state?: string | null;
}

const entity: EntityDefinition = {
	collection: `contract_things_${process.pid}`,
	idPrefix: "thg",
	fields: { code: "string", name: "string", n: "number", tags: "array", at: "date", state: "string" },
	indexes: [{ fields: { code: 1 }, unique: true, sparse: true }, { fields: { n: 1 } }],
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-contract-"));
const variants: [string, DbConfig | null][] = [
	["NeDB in memory", { dataDir: null }],
	["NeDB on disk", { dataDir: tmp }],
	["MongoDB (MONGO_URI)", process.env.MONGO_URI ? { mongoUri: process.env.MONGO_URI, dataDir: null } : null],
];

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function expectDuplicate(p: Promise<unknown>) {
	const outcome = await p.then(() => "stored", (err: unknown) => err);
	expect(outcome).not.toBe("stored");
	expect(Repository.isDuplicateKeyError(outcome)).toBe(true);
}

describe.each(variants)("storage contract: %s", (name, db) => {
	const run = db ? it : it.skip;
	const broker = new ServiceBroker({ logger: false });
	let repo: Repository<Thing>;

	function open() {
		return new Repository<Thing>(entity, createAdapter(entity, db!), {
			broker,
			logger: broker.logger,
			model: db?.mongoUri ? mongooseModelOf(entity) : undefined,
			persistent: !db?.mongoUri && db?.dataDir !== null,
		});
	}

	beforeAll(async () => {
		if (!db) return;
		repo = open();
		await repo.connect();
		await repo.clear();
	});
	afterAll(async () => {
		if (!db) return;
		await repo.clear();
		await repo.disconnect();
		if (db.mongoUri) await mongoose.disconnect();
	});

	run("inserts with a prefixed string id and returns plain objects", async () => {
		const t = await repo.insert({ name: "a", n: 1, tags: ["x"], at: new Date("2026-01-02T03:04:05Z") });
		expect(t._id).toMatch(/^thg_[A-Za-z0-9_-]{16}$/);
		const back = await repo.findById(t._id);
		expect(back).toEqual({ _id: t._id, name: "a", n: 1, tags: ["x"], at: new Date("2026-01-02T03:04:05Z") });
		expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
		expect(await repo.findById("thg_missing")).toBeNull();
	});

	run("finds with query operators, sort, limit and offset, and counts", async () => {
		await repo.clear();
		for (let i = 1; i <= 10; i++) await repo.insert({ name: `n${i}`, n: i });
		expect((await repo.find({ query: { n: { $gte: 8 } }, sort: "-n" })).map(t => t.n)).toEqual([10, 9, 8]);
		expect((await repo.find({ sort: "n", limit: 3, offset: 2 })).map(t => t.n)).toEqual([3, 4, 5]);
		expect((await repo.find({ query: { n: { $in: [2, 4, 99] } }, sort: "n" })).map(t => t.name)).toEqual(["n2", "n4"]);
		expect(await repo.count({ n: { $lt: 5 } })).toBe(4);
		expect(await repo.count()).toBe(10);
		expect(await repo.findOne({ name: "n7" })).toMatchObject({ n: 7 });
	});

	run("pages through a collection in id order with an _id cursor", async () => {
		await repo.clear();
		for (let i = 0; i < 40; i++) await repo.insert({ name: `p${i}`, n: i });
		const all = (await repo.find({})).map(t => t._id).sort();
		const seen: string[] = [];
		for (let after: string | undefined; ; ) {
			const page = await repo.find({ query: after ? { _id: { $gt: after } } : {}, sort: "_id", limit: 7 });
			seen.push(...page.map(t => t._id));
			if (page.length < 7) break;
			after = page[page.length - 1]._id;
		}
		expect(seen).toEqual(all);
	});

	run("lists the ids of the matching documents in id order, the order of a find sorted by _id", async () => {
		await repo.clear();
		for (let i = 0; i < 30; i++) await repo.insert({ name: `i${i}`, n: i % 3 });
		const sorted = (await repo.find({ query: { n: 1 }, sort: "_id" })).map(t => t._id);
		expect(sorted).toHaveLength(10);
		expect(await repo.ids({ n: 1 })).toEqual(sorted);
		expect(await repo.ids()).toHaveLength(30);
		expect(await repo.ids({ n: 99 })).toEqual([]);
	});

	run("enforces unique indexes, and lets many documents lack a sparse unique field", async () => {
		await repo.clear();
		await repo.insert({ code: "A1", name: "first", n: 1 });
		await expectDuplicate(repo.insert({ code: "A1", name: "second", n: 2 }));
		await repo.insert({ name: "no code 1", n: 3 });
		await repo.insert({ name: "no code 2", n: 4 });
		expect(await repo.count()).toBe(3);
	});

	run("inserts a batch with given and generated ids, and reports a unique clash as a duplicate key", async () => {
		await repo.clear();
		expect(await repo.insertMany([])).toBe(0);
		const batch = Array.from({ length: 250 }, (_, i) => ({ name: `b${i}`, n: i, ...(i < 2 ? { _id: `thg_given${i}` } : {}) }));
		expect(await repo.insertMany(batch)).toBe(250);
		expect(await repo.count()).toBe(250);
		expect(await repo.findById("thg_given1")).toEqual({ _id: "thg_given1", name: "b1", n: 1 });
		const generated = await repo.findOne({ name: "b249" });
		expect(generated?._id).toMatch(/^thg_[A-Za-z0-9_-]{16}$/);
		expect((await repo.find({ query: { n: { $gte: 247 } }, sort: "n" })).map(t => t.name)).toEqual(["b247", "b248", "b249"]);

		await repo.insert({ code: "DUP", name: "first", n: 1000 });
		await expectDuplicate(repo.insertMany([{ code: "DUP", name: "again", n: 1001 }]));
		await expectDuplicate(repo.insertMany([{ _id: "thg_given0", name: "same id", n: 1002 }]));
		expect(await repo.count({ n: { $gte: 1001 } })).toBe(0);
	});

	run("conditional updates report how many changed (compare-and-set)", async () => {
		const t = await repo.insert({ name: "cas", n: 1, state: null });
		expect(await repo.updateWhere({ _id: t._id, n: 1, state: null }, { $set: { n: 2, state: "taken" } })).toBe(1);
		expect(await repo.updateWhere({ _id: t._id, n: 1 }, { $set: { n: 3 } })).toBe(0);
		expect(await repo.findById(t._id)).toMatchObject({ n: 2, state: "taken" });
	});

	run("of many concurrent compare-and-sets on one document exactly one wins", async () => {
		const t = await repo.insert({ name: "race", n: 0 });
		const results = await Promise.all(Array.from({ length: 50 }, (_, i) => repo.updateWhere({ _id: t._id, n: 0 }, { $set: { n: i + 1 } })));
		expect(results.filter(r => r === 1)).toHaveLength(1);
		expect(results.filter(r => r === 0)).toHaveLength(49);
	});

	run("updates by id with $set/$inc and returns the new document", async () => {
		const t = await repo.insert({ name: "inc", n: 5 });
		expect(await repo.updateById(t._id, { $inc: { n: 2 }, $set: { name: "inc2" } })).toMatchObject({ _id: t._id, n: 7, name: "inc2" });
		expect(await repo.updateById("thg_missing", { $set: { n: 1 } })).toBeNull();
	});

	run("removes by query and says how many", async () => {
		await repo.clear();
		for (let i = 0; i < 5; i++) await repo.insert({ name: "rm", n: i });
		expect(await repo.removeWhere({ n: { $gte: 3 } })).toBe(2);
		expect(await repo.count()).toBe(3);
	});

	(db && db.dataDir && !db.mongoUri ? it : it.skip)("keeps data across a close and reopen (embedded restart)", async () => {
		const t = await repo.insert({ code: "KEEP", name: "kept", n: 42 });
		await repo.disconnect();
		repo = open();
		await repo.connect();
		expect(await repo.findById(t._id)).toMatchObject({ name: "kept", n: 42 });
		// The unique index is rebuilt on load, too.
		await expectDuplicate(repo.insert({ code: "KEEP", name: "again", n: 1 }));
	});

	void name;
});
