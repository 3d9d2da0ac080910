/**
 * The network map's static files (/admin/): served from a fixed list, under
 * the page's own CSP, while the API keeps `default-src 'none'`.
 */
import { startTestPlatform, type TestPlatform } from "../support/platform";

let p: TestPlatform;
beforeAll(async () => {
	p = await startTestPlatform();
});
afterAll(() => p.stop());

const get = (path: string) => fetch(p.url + path);

describe("/admin/", () => {
	it("serves the page, its modules and h3-js's browser build, with a self-only CSP", async () => {
		for (const [path, type] of [["/admin/", "text/html"], ["/admin/app.js", "text/javascript"], ["/admin/admin.css", "text/css"], ["/admin/vendor/h3-js.es.js", "text/javascript"]]) {
			const res = await get(path);
			expect(res.status).toBe(200);
			expect(res.headers.get("content-type")).toContain(type);
			const csp = res.headers.get("content-security-policy")!;
			expect(csp).toContain("script-src 'self'");
			expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
			expect(res.headers.get("x-frame-options")).toBe("DENY");
		}
		const html = await (await get("/admin/")).text();
		expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|\sstyle=|\son[a-z]+=/i); // nothing inline for the CSP to refuse
	});

	it("answers 404 for anything not on its list, a path outside it included, and keeps the API's CSP", async () => {
		for (const path of ["/admin/nope.js", "/admin/vendor/h3-js.js", "/admin/..%2Fpackage.json", "/admin/%2e%2e/%2e%2e/package.json", "/admin/api/admin-files.ts"]) {
			const res = await get(path);
			expect(res.status).toBe(404);
			expect(await res.json()).toMatchObject({ code: 404, type: "NOT_FOUND" });
		}
		expect((await get("/api/v1/health")).headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
	});
});
