/**
 * The embedded door store: a document per door (a change rewrites one small
 * document), fenced by the cabinet's epoch; documents of the earlier layout
 * (every door inside its cabinet's document) are read and moved over.
 */
import { createAdapter } from "../../mixins/db.mixin";
import { Repository } from "../../mixins/repository";
import { DOOR_STATE_ENTITY, LocalDoorStore, type DoorCabinetDoc } from "../../actors/door-store";
import { newDoorRecord } from "../../actors/door-machine";

async function store() {
	const repo = new Repository<DoorCabinetDoc>(DOOR_STATE_ENTITY, createAdapter(DOOR_STATE_ENTITY, { dataDir: null }), {
		broker: {} as never, logger: console as never, persistent: false,
	});
	await repo.connect();
	return { repo, store: new LocalDoorStore(repo) };
}

it("writes one document per door, fenced by the epoch", async () => {
	const { repo, store: s } = await store();
	const { epoch } = (await s.acquire("cab_a", "n#1", 60_000)) as { epoch: number };
	const r1 = { ...newDoorRecord("cab_a", 1, "cab_a:01", false, 0), version: 3 };
	const taken = { doorId: "cab_a:01", pointId: "pt_1", size: "M", state: "reserved", open: false, occupied: false, version: 3 };
	expect(await s.save("cab_a", "n#1", epoch, [{ record: r1, due: 500, taken }])).toBe(true);
	expect(await s.save("cab_a", "n#1", epoch - 1, [{ record: { ...r1, version: 4 }, due: null, taken: null }])).toBe(false);
	expect((await repo.findById("cab_a:01"))?.record?.version).toBe(3);
	expect(await s.load("cab_a")).toEqual([r1]);
	expect(await s.taken()).toEqual([taken]);
	expect(await s.due(1000, 10)).toEqual(["cab_a"]);
	expect(await s.save("cab_a", "n#1", epoch, [{ record: { ...r1, version: 4 }, due: null, taken: null }])).toBe(true);
	expect(await s.taken()).toEqual([]);
	expect(await s.due(1000, 10)).toEqual([]);
});

it("reads a cabinet document of the earlier layout and moves its doors to their own documents", async () => {
	const { repo, store: s } = await store();
	const r2 = { ...newDoorRecord("cab_b", 2, "cab_b:02", false, 0), state: "reserved" as const, orderId: "ord_x", version: 7 };
	const taken = { doorId: "cab_b:02", pointId: "pt_1", size: "L", state: "reserved", open: false, occupied: false, version: 7 };
	await repo.insert({ _id: "cab_b", epoch: 5, doors: { 2: r2 }, dues: { 2: 900 }, nextDue: 900, taken: { 2: taken } } as never);
	expect(await s.due(1000, 10)).toEqual(["cab_b"]); // before it was ever loaded
	const { epoch } = (await s.acquire("cab_b", "n#1", 60_000)) as { epoch: number };
	expect(epoch).toBeGreaterThan(5);
	expect(await s.load("cab_b")).toEqual([r2]);
	const cabinet = await repo.findById("cab_b");
	expect(cabinet?.doors).toBeUndefined();
	expect(await repo.findById("cab_b:02")).toMatchObject({ cabinetId: "cab_b", due: 900, taken });
	expect(await s.taken()).toEqual([taken]);
	expect(await s.due(1000, 10)).toEqual(["cab_b"]);
});
