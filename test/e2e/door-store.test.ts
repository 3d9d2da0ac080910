/**
 * The door store's fencing on the real Redis: a stale owner (its lease expired
 * and another node took the cabinet) can neither write nor renew, and every
 * takeover gets a larger epoch — also after the store forgot everything.
 */
import IORedis from "ioredis";
import { newDoorRecord } from "../../actors/door-machine";
import { RedisDoorStore } from "../../actors/door-store";

const REDIS = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

describe("Redis door store: leases and fenced writes", () => {
	const redis = new IORedis(REDIS);
	const prefix = `e2e-store-${process.pid}:`;
	const store = new RedisDoorStore(redis, prefix);
	const cab = "cab_fence1";
	const item = (version: number) => {
		const record = { ...newDoorRecord(cab, 1, `${cab}:01`, false, 0), version };
		return { record, due: null, taken: null };
	};

	afterAll(async () => {
		const keys = await redis.keys(`${prefix}*`);
		if (keys.length) await redis.del(...keys);
		await redis.quit();
	});

	it("refuses a stale owner's writes and renewals after a takeover", async () => {
		const a = (await store.acquire(cab, "node-a#1", 60_000)) as { epoch: number };
		expect(a.epoch).toBeGreaterThan(0);
		expect(await store.acquire(cab, "node-b#1", 60_000)).toMatchObject({ heldBy: "node-a#1" });
		expect(await store.save(cab, "node-a#1", a.epoch, [item(1)])).toBe(true);

		await redis.del(`${prefix}lease:{${cab}}`); // A's lease runs out (it paused, or died)
		const b = (await store.acquire(cab, "node-b#1", 60_000)) as { epoch: number };
		expect(b.epoch).toBeGreaterThan(a.epoch);

		expect(await store.save(cab, "node-a#1", a.epoch, [item(2)])).toBe(false);
		expect(await store.renew(cab, "node-a#1", a.epoch, 60_000)).toBe(false);
		expect((await store.load(cab))[0].version).toBe(1); // A's late write did not land
		expect(await store.save(cab, "node-b#1", b.epoch, [item(3)])).toBe(true);
		expect((await store.load(cab))[0].version).toBe(3);
	});

	it("says how long a held lease has left", async () => {
		const c = "cab_fence3";
		await store.acquire(c, "node-a#1", 5_000);
		const held = (await store.acquire(c, "node-b#1", 5_000)) as { heldBy: string; expiresInMs: number };
		expect(held.heldBy).toBe("node-a#1");
		expect(held.expiresInMs).toBeGreaterThan(4_000);
		expect(held.expiresInMs).toBeLessThanOrEqual(5_000);
	});

	it("passes what the previous owner heard to the next one at an orderly release, once, and never from a stale owner", async () => {
		const c = "cab_fence5";
		const a = (await store.acquire(c, "node-a#1", 60_000)) as { epoch: number; heardForMs?: number };
		expect(a.heardForMs).toBeUndefined(); // nobody passed anything on
		await store.release(c, "node-z#1", 1, 5_000); // not the holder: changes nothing
		await store.release(c, "node-a#1", a.epoch, 5_000);
		const b = (await store.acquire(c, "node-b#1", 60_000)) as { epoch: number; heardForMs?: number };
		expect(b.heardForMs).toBeGreaterThan(4_000);
		expect(b.heardForMs).toBeLessThanOrEqual(5_000);
		await redis.del(`${prefix}lease:{${c}}`); // B dies: its lease runs out
		const d = (await store.acquire(c, "node-d#1", 60_000)) as { epoch: number };
		expect(d).not.toHaveProperty("heardForMs"); // taken by B already
		await store.release(c, "node-d#1", d.epoch); // a silent cabinet: nothing to pass on
		expect(await store.acquire(c, "node-e#1", 60_000)).not.toHaveProperty("heardForMs");
	});

	it("keeps what is heard with each renewal, so a failover passes it on too; an offline cabinet's is dropped", async () => {
		const c = "cab_fence6";
		const a = (await store.acquire(c, "node-a#1", 60_000)) as { epoch: number };
		expect(await store.renew(c, "node-a#1", a.epoch, 60_000, 80_000)).toBe(true);
		await redis.del(`${prefix}lease:{${c}}`); // A dies: its lease runs out
		const b = (await store.acquire(c, "node-b#1", 60_000)) as { epoch: number; heardForMs?: number };
		expect(b.heardForMs).toBeGreaterThan(79_000);
		expect(await store.renew(c, "node-b#1", b.epoch, 60_000, 80_000)).toBe(true);
		expect(await store.renew(c, "node-b#1", b.epoch, 60_000, 0)).toBe(true); // the cabinet said goodbye
		await redis.del(`${prefix}lease:{${c}}`);
		expect(await store.acquire(c, "node-c#1", 60_000)).not.toHaveProperty("heardForMs");
	});

	it("keeps epochs growing when the store forgets everything, and moves a lease past a refused epoch once", async () => {
		const c = "cab_fence4";
		const first = (await store.acquire(c, "node-a#1", 60_000)) as { epoch: number };
		// Redis restarted empty: lease, epoch counter and records gone.
		await redis.del(`${prefix}lease:{${c}}`, `${prefix}epoch:{${c}}`, `${prefix}doors:{${c}}`);
		// A restart takes time: wait until Redis's clock has moved past the first epoch (its millisecond).
		for (let t = 0; t <= first.epoch; ) {
			const [sec, micro] = await redis.time();
			t = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
		}
		const again = (await store.acquire(c, "node-a#1", 60_000)) as { epoch: number };
		expect(again.epoch).toBeGreaterThan(first.epoch);
		// A cabinet still refuses it (a clock set back): the holder moves on; a stranger cannot.
		expect(await store.bump(c, "node-b#1", again.epoch)).toBeNull();
		const bumped = await store.bump(c, "node-a#1", again.epoch);
		expect(bumped).toBeGreaterThan(again.epoch);
		expect(await store.save(c, "node-a#1", again.epoch, [{ record: { ...newDoorRecord(c, 1, `${c}:01`, false, 0), version: 1 }, due: null, taken: null }])).toBe(false);
		expect(await store.renew(c, "node-a#1", bumped!, 60_000)).toBe(true);
		expect(await store.acquire(c, "node-a#1", 60_000)).toEqual({ epoch: bumped });
	});

	it("keeps the timer index and the taken doors with the records", async () => {
		const c = "cab_fence2";
		const { epoch } = (await store.acquire(c, "node-a#1", 60_000)) as { epoch: number };
		const taken = { doorId: `${c}:01`, pointId: "pt_1", size: "M", state: "reserved", open: false, occupied: false, version: 1 };
		const record = { ...newDoorRecord(c, 1, `${c}:01`, false, 0), version: 1 };
		expect(await store.save(c, "node-a#1", epoch, [{ record, due: 1000, taken }])).toBe(true);
		expect(await store.due(1000, 10)).toContain(c);
		expect((await store.taken()).filter(t => t.doorId === taken.doorId)).toEqual([taken]);
		expect(await store.save(c, "node-a#1", epoch, [{ record: { ...record, version: 2 }, due: null, taken: null }])).toBe(true);
		expect(await store.due(Number.MAX_SAFE_INTEGER, 1000)).not.toContain(c);
		expect((await store.taken()).filter(t => t.doorId === taken.doorId)).toEqual([]);
	});
});
