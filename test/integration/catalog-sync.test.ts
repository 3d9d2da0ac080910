/**
 * The catch-up feed read models use after missing broadcasts: it must page
 * through changes in (updatedAt, id) order without losing or repeating any,
 * also when many points share one timestamp (the demo fleet is written with one).
 */
import { startTestPlatform, type TestPlatform } from "../support/platform";
import type { PointView } from "../../domain/catalog";

describe("merchants.pointsChangedSince", () => {
	let p: TestPlatform;
	beforeAll(async () => {
		p = await startTestPlatform({ DEMO_SEED: "true" });
	});
	afterAll(() => p.stop());

	it("pages through a fleet that shares one timestamp by the (updatedAt, id) cursor", async () => {
		const broker = p.node.broker;
		const total = (await broker.call<PointView[], object>("merchants.pointsPage", { limit: 1000 })).length;
		expect(total).toBeGreaterThan(150);

		const seen: string[] = [];
		let since = new Date(0);
		let afterId: string | undefined;
		for (;;) {
			const rows = await broker.call<PointView[], object>("merchants.pointsChangedSince", { since, afterId, limit: 37 });
			seen.push(...rows.map(r => r.id));
			if (rows.length < 37) break;
			since = new Date(rows[rows.length - 1].updatedAt);
			afterId = rows[rows.length - 1].id;
		}
		expect(seen).toHaveLength(total);
		expect(new Set(seen).size).toBe(total);
	});

	it("answers a point changed after the cursor, and nothing older", async () => {
		const broker = p.node.broker;
		const [point] = await broker.call<PointView[], object>("merchants.pointsPage", { limit: 1 });
		const before = new Date();
		await broker.call("merchants.updatePoint", { id: point.id, name: "改名的寄存点" });
		const rows = await broker.call<PointView[], object>("merchants.pointsChangedSince", { since: before, limit: 100 });
		expect(rows.map(r => [r.id, r.name])).toEqual([[point.id, "改名的寄存点"]]);
	});
});
