// Walks the coordinators' panel as a coordinator would, in Debian's headless Chromium, at desktop
// and phone width. Run by scripts/browser-tests, which starts the service with the demo data and
// passes where it is and how to sign in. Exits 1 on the first page that breaks a rule, saying why.
import { chromium } from "playwright-core";

const base = process.env.FIELDLINE_URL;
const demo = JSON.parse(process.env.FIELDLINE_DEMO);
const widths = [
  { name: "desktop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];
const problems = [];
const weights = [];

function fail(where, why) {
  problems.push(`${where}: ${why}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});

async function signedIn(viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.goto(`${base}/panel/login`);
  await page.getByLabel("Organisation").fill(demo.panel.organisation);
  await page.getByLabel("Email").fill(demo.panel.admin_email);
  await page.getByLabel("Password").fill(demo.panel.password);
  await Promise.all([page.waitForURL(`${base}/panel`), page.getByRole("button", { name: /sign in/i }).click()]);
  return page;
}

/// Pages to walk: the sections, and the first record linked from each list.
async function pagesToWalk(page) {
  const sections = ["/panel", "/panel/work-orders", "/panel/visits", "/panel/visit-exceptions", "/panel/assignments",
    "/panel/trips", "/panel/complaints", "/panel/feedback", "/panel/feedback/trends", "/panel/patients", "/panel/history"];
  const records = [];
  for (const [list, pattern] of [["/panel/work-orders", /^\/panel\/work-orders\/[0-9a-f-]{36}$/],
    ["/panel/visits", /^\/panel\/visits\/[0-9a-f-]{36}$/], ["/panel/trips", /^\/panel\/trips\/[0-9a-f-]{36}$/],
    ["/panel/complaints", /^\/panel\/complaints\/[0-9a-f-]{36}$/], ["/panel/patients", /^\/panel\/patients\/[0-9a-f-]{36}$/]]) {
    await page.goto(base + list);
    const hrefs = await page.$$eval("a[href]", (as) => as.map((a) => a.getAttribute("href")));
    const first = hrefs.find((h) => pattern.test(h));
    if (first) { records.push(first); } else { console.log(`${list}: no record in the demo data to walk into`); }
  }
  return sections.concat(records);
}

async function check(page, path, viewport) {
  const where = `${path} at ${viewport.name}`;
  const response = await page.goto(base + path);
  if (response.status() !== 200) { return fail(where, `status ${response.status()}`); }
  const facts = await page.evaluate(() => {
    const unlabelled = [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden" && el.type !== "submit")
      .filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label"))
      .map((el) => el.name || el.outerHTML.slice(0, 60));
    const nav = performance.getEntriesByType("navigation")[0];
    // The innermost elements that reach past the right edge: what to fix.
    // (Not the section links: they scroll inside their own strip.)
    const wide = [...document.querySelectorAll("body *:not(header.top nav *)")]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
      .filter((el) => ![...el.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + 1))
      .slice(0, 3)
      .map((el) => `<${el.tagName.toLowerCase()}${el.getAttribute("class") ? "." + el.getAttribute("class") : ""}> ${Math.round(el.getBoundingClientRect().width)} px`);
    return {
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      wide,
      unlabelled,
      bytes: nav ? nav.encodedBodySize : 0,
      server_ms: nav ? nav.responseStart - nav.requestStart : 0,
      lang_ok: document.documentElement.lang !== "",
    };
  });
  if (facts.overflow > 1) { fail(where, `scrolls sideways by ${facts.overflow} px (${facts.wide.join(", ")})`); }
  if (facts.unlabelled.length) { fail(where, `form fields without a label: ${facts.unlabelled.join(", ")}`); }
  if (!facts.lang_ok) { fail(where, "no lang attribute"); }
  weights.push({ page: path, width: viewport.name, kb: +(facts.bytes / 1024).toFixed(1), server_ms: Math.round(facts.server_ms) });
}

for (const viewport of widths) {
  const page = await signedIn(viewport);
  for (const path of await pagesToWalk(page)) { await check(page, path, viewport); }

  // The map draws: tiles if the tile server answers, the server's drawing if not.
  await page.goto(`${base}/panel/visits`);
  const visit = (await page.$$eval("a[href]", (as) => as.map((a) => a.getAttribute("href"))))
    .find((h) => /^\/panel\/visits\/[0-9a-f-]{36}$/.test(h));
  if (visit) {
    await page.goto(base + visit);
    const map = await page.$("figure.map");
    if (!map) { fail(`${visit} at ${viewport.name}`, "no map"); } else {
      await page.waitForTimeout(1500);
      const shown = await map.evaluate((f) => f.classList.contains("tiled")
        ? "tiles" : (f.querySelector("svg.drawing")?.getBoundingClientRect().height > 0 ? "drawing" : "nothing"));
      if (shown === "nothing") { fail(`${visit} at ${viewport.name}`, "the map shows neither tiles nor the drawing"); }
      weights.push({ page: `${visit} map`, width: viewport.name, shows: shown });
    }
  }

  // Text from a record is text in the map's tooltips, never markup (Leaflet reads strings as HTML).
  if (viewport.name === "desktop") {
    const created = await fetch(`${base}/api/v1/trips`, {
      method: "POST",
      headers: { authorization: `Bearer ${demo.api_token}`, "content-type": "application/json" },
      body: JSON.stringify({ request_type: "scheduled", scheduled_at: new Date(Date.now() + 86400000).toISOString(),
        pickup_address: 'Bole <img id="injected" src="x"> gate', pickup_latitude: 9.0101, pickup_longitude: 38.7612,
        dropoff_address: "Black Lion Hospital" }),
    });
    if (created.status !== 201) { fail("map tooltips", `creating a trip answered ${created.status}`); }
    await page.goto(`${base}/panel/trips`);
    await page.waitForTimeout(1000);
    const tooltips = await page.evaluate(() => {
      document.querySelectorAll(".leaflet-interactive").forEach((el) =>
        el.dispatchEvent(new MouseEvent("mouseover", { bubbles: true })));
      return { injected: !!document.getElementById("injected"),
        texts: Array.from(document.querySelectorAll(".leaflet-tooltip")).map((t) => t.textContent) };
    });
    if (tooltips.injected) { fail("map tooltips", "a pickup address became an element of the page"); }
    if (!tooltips.texts.some((t) => t.includes('<img id="injected"'))) {
      fail("map tooltips", `the address is not shown as text: ${JSON.stringify(tooltips.texts)}`);
    }
  }

  // Another organisation's record (or none) is a 404, never a 403 that confirms it exists.
  const missing = await page.goto(`${base}/panel/work-orders/01a22fa8-0000-7000-8000-00000000dead`);
  if (missing.status() !== 404) { fail("a record of no one's", `status ${missing.status()}`); }

  // A change arrives without a reload by hand: report work through the API, watch the dashboard.
  if (viewport.name === "desktop") {
    await page.goto(`${base}/panel`);
    await page.evaluate(() => { window.__stale = true; });
    await page.waitForTimeout(6000); // the page learns the current state first
    const reported = await fetch(`${base}/api/v1/work-orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${demo.api_token}`, "content-type": "application/json" },
      body: JSON.stringify({ kind: "maintenance", title: "Browser walk: door will not lock", priority: "high" }),
    });
    if (reported.status !== 201) { fail("live update", `reporting work answered ${reported.status}`); }
    try {
      await page.waitForEvent("load", { timeout: 20000 });
      if (await page.evaluate(() => window.__stale)) { fail("live update", "loaded, but not anew"); }
    } catch {
      fail("live update", "the dashboard did not update within 20 s of a new work order");
    }
  }
  await page.context().close();
}
await browser.close();

console.table(weights);
if (problems.length) {
  console.error(`\n${problems.length} problem(s):\n- ${problems.join("\n- ")}`);
  process.exit(1);
}
console.log("\nevery page walked at desktop and phone width: no sideways scroll, every field labelled");
