/**
 * The network map (/admin/) in a real browser: Debian's chromium driven by
 * playwright-core (no browser download, no network), against the whole
 * platform in this process with the demo fleet and every cabinet of one city
 * simulated over the embedded MQTT broker. Every wait is on the page's DOM.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { ADMIN, startTestPlatform, type TestPlatform } from "../support/platform";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CITY = "SH";
/** README's picture is replaced only on request (UPDATE_SCREENSHOT=1), so a test run leaves the work tree clean. */
const SCREENSHOT = process.env.UPDATE_SCREENSHOT === "1"
	? path.join(__dirname, "..", "..", "docs", "admin-map.png")
	: path.join(os.tmpdir(), `admin-map-${process.pid}.png`);

let p: TestPlatform;
let browser: BrowserContext;
let page: Page;
let dataDir: string;
let profileDir: string;
const sims = new Map<string, SimulatedCabinet>();
/** The cabinet the test opens remotely, and one whose power is cut. */
let target: { cabinetId: string; pointId: string };
let cut: { cabinetId: string; pointId: string };

jest.setTimeout(120_000);

beforeAll(async () => {
	dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "admin-map-"));
	profileDir = fs.mkdtempSync(path.join(os.tmpdir(), "admin-map-chromium-"));
	// On disk so the demo seed writes its cabinets' credentials for the simulator.
	p = await startTestPlatform({ DEMO_SEED: "true", HEARTBEAT_SEC: "5" }, { dataDir });
	const broker = p.node.broker;
	const mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;

	const cityPoints = new Set<string>((await p.api("GET", `/api/v1/cities/${CITY}/points?pageSize=100`)).body.rows.map((r: { id: string }) => r.id));
	const creds = fs.readFileSync(path.join(dataDir, "demo-cabinet-credentials.jsonl"), "utf8").trim().split("\n")
		.map(l => JSON.parse(l) as { username: string; password: string; pointId: string; doors: { no: number; size: "S" | "M" | "L" }[] })
		.filter(c => cityPoints.has(c.pointId));
	expect(creds.length).toBeGreaterThan(10);
	await Promise.all(creds.map(async c => {
		const sim = new SimulatedCabinet({ cabinetId: c.username, secret: c.password, doors: c.doors, mqttUrl, heartbeatSec: 5 });
		sims.set(c.username, sim);
		await sim.start();
	}));
	type View = { online: boolean; doors: { no: number; state: string }[] };
	const views = new Map<string, View>();
	await waitFor("every cabinet online", async () => {
		for (const c of creds) views.set(c.username, await broker.call<View, object>("doors.cabinet", { cabinetId: c.username }));
		return [...views.values()].every(v => v.online);
	});
	// The demo fleet has disabled doors: the test's own doors (2 and 5) must be usable.
	const usable = (c: (typeof creds)[number]) => [2, 5].every(no => views.get(c.username)!.doors.find(d => d.no === no)?.state === "available");
	const t = creds.find(usable)!;
	target = { cabinetId: t.username, pointId: t.pointId };
	cut = creds.map(c => ({ cabinetId: c.username, pointId: c.pointId })).find(c => c.pointId !== target.pointId)!;

	// A fleet at work: doors reserved across the city (every fourth cabinet full), so cells differ in free doors.
	let n = 0;
	for (const c of creds) {
		if (c.username === target.cabinetId) continue;
		const take = n++ % 4 === 0 ? c.doors.length : n % 3;
		for (const d of views.get(c.username)!.doors.filter(d => d.state === "available").slice(0, take)) {
			await broker.call("doors.reserve", { doorId: doorId(c.username, d.no), orderId: `demo-${c.username}-${d.no}` });
		}
	}
	await broker.call("doors.reserve", { doorId: doorId(target.cabinetId, 1), orderId: "reserved-order" }).catch(() => undefined);
	// In the target cabinet: door 2 holds a bag (opened for a deposit and closed on it).
	const bagDoor = doorId(target.cabinetId, 2);
	await broker.call("doors.reserve", { doorId: bagDoor, orderId: "bag-order" });
	await broker.call("doors.open", { doorId: bagDoor, orderId: "bag-order", purpose: "deposit" });
	sims.get(target.cabinetId)!.close(2, true);
	await waitFor("the bag in door 2", async () => (await broker.call<{ occupied: boolean }, object>("doors.get", { doorId: bagDoor })).occupied);
	// A power cut: the broker publishes the cabinet's last will.
	sims.get(cut.cabinetId)!.crash();
	await waitFor("the cut cabinet offline", async () => !(await broker.call<{ online: boolean }, object>("doors.cabinet", { cabinetId: cut.cabinetId })).online);

	browser = await chromium.launchPersistentContext(profileDir, {
		executablePath: CHROMIUM,
		headless: true,
		viewport: { width: 1440, height: 900 },
		args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
	});
	page = browser.pages()[0] ?? (await browser.newPage());
	page.on("pageerror", err => pageErrors.push(err.message));
	page.on("console", msg => msg.type() === "error" && consoleErrors.push(msg.text()));
});

afterAll(async () => {
	await browser?.close();
	await Promise.all([...sims.values()].map(s => s.stop().catch(() => undefined)));
	await p?.stop();
	for (const dir of [dataDir, profileDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

const pageErrors: string[] = [];
const consoleErrors: string[] = [];
const doorId = (cabinetId: string, no: number) => `${cabinetId}:${String(no).padStart(2, "0")}`;

async function waitFor(what: string, probe: () => Promise<boolean>, ms = 15_000) {
	const end = Date.now() + ms;
	while (!(await probe())) {
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
		await new Promise(r => setTimeout(r, 50));
	}
}

/** Waits until the map shows exactly n cells (the page's DOM, evaluated in the browser). */
// (A function, not a string: the page's CSP refuses eval, which a string predicate would need.)
const cellsDrawn = (n: number) => page.waitForFunction(want => (globalThis as any).document.querySelectorAll("svg#map polygon.cell").length === want, n);

const cellCount = async (res: number) => (await p.api("GET", `/api/v1/cities/${CITY}/map?res=${res}`)).body.cells.length as number;

describe("the network map in chromium", () => {
	it("signs in with the staff account and draws the city's H3 cells", async () => {
		await page.goto(`${p.url}/admin/`);
		await page.fill("#login-name", ADMIN.username);
		await page.fill("#login-password", "not-the-password");
		await page.click("#login-submit");
		await page.waitForSelector("#login-error:not(:empty)");
		expect(await page.isVisible("#app")).toBe(false);

		await page.fill("#login-password", ADMIN.password);
		await page.click("#login-submit");
		await page.waitForSelector("svg#map polygon.cell");
		// The event stream is open (GET /api/v1/events with the token in its header): the page does not poll.
		await page.waitForSelector("#live.online");
		await page.selectOption("#city", CITY);
		const at7 = await cellCount(7);
		await cellsDrawn(at7);
		expect(page.url()).toContain(`#city=${CITY}&res=7`);
		// Every point of the city is drawn, the cells with no free door are told apart.
		const points = (await p.api("GET", `/api/v1/cities/${CITY}/points?pageSize=100`)).body.total;
		expect(await page.locator("svg#map g.point").count()).toBe(points);
		expect(await page.locator("svg#map polygon.cell.free-0").count()).toBeGreaterThan(0);
		expect(await page.locator("#legend .legend-item").count()).toBeGreaterThan(4);
	});

	it("switches resolution and draws that resolution's cells", async () => {
		const [at7, at9] = [await cellCount(7), await cellCount(9)];
		expect(at9).toBeGreaterThan(at7);
		await page.selectOption("#res", "9");
		await cellsDrawn(at9);
		await page.selectOption("#res", "8");
		await cellsDrawn(await cellCount(8));
	});

	it("highlights the offline cabinet and its firing alert", async () => {
		await page.waitForSelector(`#offline [data-cabinet-id="${cut.cabinetId}"]`);
		await page.waitForSelector(`svg#map g.point.trouble[data-point-id="${cut.pointId}"]`);
		await page.waitForSelector(`#alerts li[data-alert="CabinetOffline"]`);
	});

	it("opens a cabinet, opens a door remotely with a reason, and shows the door open and closed again live", async () => {
		await page.click(`svg#map g.point[data-point-id="${target.pointId}"]`);
		await page.waitForSelector("#point h2");
		await page.click(`#point [data-cabinet-id="${target.cabinetId}"]`);
		const door = (no: number) => `#cabinet .door[data-door-id="${doorId(target.cabinetId, no)}"]`;
		await page.waitForSelector(`${door(2)}[data-state="occupied"]`);
		const five = door(5);
		const before = await page.getAttribute(five, "data-state");
		expect(await page.getAttribute(five, "data-open")).toBe("false");

		await page.click(five);
		await page.fill("#open-reason", "ok"); // too short: refused in the page, nothing sent
		await page.click("#cabinet .open-form button[type=submit]");
		await page.waitForSelector("#cabinet .form-message.error");
		expect(sims.get(target.cabinetId)!.doors.get(5)!.open).toBe(false);

		await page.fill("#open-reason", "browser test: customer locked out");
		await page.click("#cabinet .open-form button[type=submit]");
		await page.waitForSelector("#cabinet .form-message.ok");
		await page.waitForSelector(`${five}[data-open="true"]`);
		expect(sims.get(target.cabinetId)!.doors.get(5)!.open).toBe(true);
		const audit = (await p.api("GET", `/api/v1/admin/audit?targetId=${encodeURIComponent(doorId(target.cabinetId, 5))}`, undefined, { token: await adminToken() })).body;
		expect(audit.rows[0]).toMatchObject({ action: "door.open", reason: "browser test: customer locked out" });

		// The picture for the README: resolution 7, zoomed in on the opened cabinet's point.
		await page.selectOption("#res", "7");
		await cellsDrawn(await cellCount(7));
		const box = (await page.locator(`svg#map g.point[data-point-id="${target.pointId}"]`).boundingBox())!;
		await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
		for (let i = 0; i < 4; i++) await page.mouse.wheel(0, -100);
		await page.waitForFunction(() => (globalThis as any).document.getElementById("map").viewBox.baseVal.width < 600);
		fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
		await page.screenshot({ path: SCREENSHOT });

		// The person at the door shuts it: the page shows it closed from the door's event, with no reload or poll.
		expect(await page.isVisible("#live.online")).toBe(true);
		sims.get(target.cabinetId)!.close(5, false);
		await page.waitForSelector(`${five}[data-open="false"]`);
		expect(await page.getAttribute(five, "data-state")).toBe(before);
		expect(pageErrors).toEqual([]);
	});
});

async function adminToken(): Promise<string> {
	return (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
}
