import { countOpenOrders, OPEN_STATUSES, statusSetBy, watchStatusWrites } from "../../services/orders/status-metrics";

/** A repository whose conditional updates match when `query.version` is the stored one. */
function fakeRepo() {
	const docs = new Map<string, { status: string; version: number }>();
	return {
		docs,
		async insert(doc: { _id: string; status: string; version: number }) {
			if (docs.has(doc._id)) throw new Error("duplicate");
			docs.set(doc._id, { status: doc.status, version: doc.version });
			return doc;
		},
		async updateWhere(query: Record<string, unknown>, update: Record<string, unknown>) {
			const d = docs.get(String(query._id));
			if (!d || (query.version !== undefined && query.version !== d.version)) return 0;
			Object.assign(d, update.$set);
			return 1;
		},
	};
}

describe("order status metrics", () => {
	it("counts each status entered by a write that landed, and only those", async () => {
		const repo = fakeRepo();
		const entered: string[] = [];
		watchStatusWrites(repo, (s, n) => entered.push(`${s}×${n}`));
		await repo.insert({ _id: "o1", status: "reserved", version: 1 });
		await expect(repo.insert({ _id: "o1", status: "reserved", version: 1 })).rejects.toThrow();
		expect(await repo.updateWhere({ _id: "o1", version: 1 }, { $set: { status: "depositing", version: 2 } })).toBe(1);
		// Lost a compare-and-set: nothing entered.
		expect(await repo.updateWhere({ _id: "o1", version: 1 }, { $set: { status: "stored", version: 2 } })).toBe(0);
		// A write without a status (door events, refund proposals) enters nothing.
		await repo.updateWhere({ _id: "o1" }, { $set: { refundProposed: null }, $push: { doorEvents: "e" } });
		await repo.updateWhere({ _id: "o1", version: 2 }, { $set: { status: "stored", version: 3 } });
		expect(entered).toEqual(["reserved×1", "depositing×1", "stored×1"]);
		expect(repo.docs.get("o1")).toMatchObject({ status: "stored", version: 3 });
	});

	it("reads only known statuses from a write", () => {
		expect(statusSetBy({ $set: { status: "paid" } })).toBe("paid");
		expect(statusSetBy({ $set: { status: "ord_123" } })).toBeNull();
		expect(statusSetBy({ $set: { status: 3 } })).toBeNull();
		expect(statusSetBy({ $inc: { version: 1 } })).toBeNull();
		expect(statusSetBy(undefined)).toBeNull();
	});

	it("counts the open statuses, one query each", async () => {
		const queries: unknown[] = [];
		const counts = await countOpenOrders(async q => {
			queries.push(q);
			return (q as { status: string }).status === "stored" ? 7 : 0;
		});
		expect(queries).toEqual(OPEN_STATUSES.map(status => ({ status })));
		expect(counts).toMatchObject({ stored: 7, reserved: 0, picking_up: 0 });
		expect(Object.keys(counts)).not.toContain("completed");
	});
});
