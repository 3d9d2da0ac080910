/**
 * GET /api/docs: the OpenAPI document as a page. Over HTTP: its CSP allows exactly its own
 * inline script and style and same-origin fetches, on that route only. In Debian's chromium
 * (playwright-core, no download): the page renders every operation of /api/openapi.json with
 * its response schema, and the browser reports no CSP violation.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startTestPlatform, type TestPlatform } from "../support/platform";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const withBrowser = fs.existsSync(CHROMIUM) ? it : it.skip;

let p: TestPlatform;
jest.setTimeout(60_000);

beforeAll(async () => {
	p = await startTestPlatform();
});
afterAll(async () => {
	await p?.stop();
});

const sha = (text: string) => `'sha256-${crypto.createHash("sha256").update(text).digest("base64")}'`;

it("serves the page with a CSP that names its inline script and style by hash, on that route only", async () => {
	const res = await fetch(`${p.url}/api/docs`);
	expect(res.status).toBe(200);
	expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
	const html = await res.text();
	const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1];
	const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1];
	expect(html.match(/<script/g)).toHaveLength(1);
	const csp = res.headers.get("content-security-policy")!;
	expect(csp.split("; ")).toEqual(expect.arrayContaining([
		"default-src 'none'", `script-src ${sha(script)}`, `style-src ${sha(style)}`, "connect-src 'self'", "frame-ancestors 'none'",
	]));
	expect(csp).not.toMatch(/unsafe|https?:|\*/);
	// Every other route keeps the gateway's closed policy.
	expect((await fetch(`${p.url}/api/openapi.json`)).headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
});

withBrowser("renders every operation with its response schema, without a CSP violation", async () => {
	const profile = fs.mkdtempSync(path.join(os.tmpdir(), "api-docs-chromium-"));
	const browser = await chromium.launchPersistentContext(profile, {
		executablePath: CHROMIUM,
		headless: true,
		args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
	});
	try {
		const page = browser.pages()[0] ?? (await browser.newPage());
		const problems: string[] = [];
		page.on("console", m => { if (m.type() === "error") problems.push(m.text()); });
		page.on("pageerror", e => problems.push(e.message));
		await page.goto(`${p.url}/api/docs`);
		const doc = (await p.api("GET", "/api/openapi.json")).body;
		const operations = Object.values<Record<string, unknown>>(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
		await page.waitForSelector("#schemas");
		expect(await page.locator("details.op").count()).toBe(operations);

		const create = page.locator("details.op", { has: page.locator(".path", { hasText: /^\/api\/v1\/orders$/ }) }).filter({ has: page.locator(".m.POST") });
		await create.locator("summary").click();
		const text = await create.innerText();
		expect(text).toContain("orders.create");
		expect(text).toContain("201 Reserved");
		expect(text).toMatch(/pointId: .*string/);
		expect(await create.locator(".schema a", { hasText: "Order" }).count()).toBe(1);
		expect(await page.locator("#schema-Order").count()).toBe(1);

		await page.fill("#filter", "sandbox");
		expect(await page.locator("details.op:not([hidden])").count()).toBe(2);
		expect(problems).toEqual([]);
	} finally {
		await browser.close();
		fs.rmSync(profile, { recursive: true, force: true });
	}
});
