// Injected into a copy of a Snakemake HTML report by tests/browser.py: reads the report as a person
// would, by clicking. For every category of the menu (and each subcategory), every row of its result
// table is opened with its view button; what the content pane then shows is recorded. The record is
// kept up to date as JSON in a pre element with the id report-walk, for --dump-dom to carry out
// (with "done": true once the walk is complete).
// With "#show=TEXT" in the URL it instead opens the first result whose path contains TEXT (for a
// screenshot) and stops.
(async function () {
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const record = { menu: [], results: [], errors: [], done: false };
    const out = document.createElement("pre");
    out.id = "report-walk";
    const save = () => { out.textContent = JSON.stringify(record); };
    const content = () => document.querySelector("#app > div > div:not(.fixed):not(nav)")
        || document.querySelector("#app").lastElementChild;
    const links = (root) => [...root.querySelectorAll("a")];
    const byText = (root, text) => links(root).find((a) => a.textContent.trim() === text);
    const nav = () => document.querySelector("#app nav");
    const toMenu = async () => { app.setView({ navbarMode: "menu" }); await sleep(100); };

    async function openRows(category, subcategory) {
        const rows = [...nav().querySelectorAll("table tbody tr")];
        for (let index = 0; index < rows.length; index++) {
            const row = nav().querySelectorAll("table tbody tr")[index];
            const cells = [...row.querySelectorAll("td")];
            const button = cells[cells.length - 1].querySelector("a");
            const entry = { category, subcategory, labels: cells.slice(0, -1).map((c) => c.textContent.trim()) };
            if (button.hasAttribute("download")) {
                entry.shown = "download";
                entry.path = button.getAttribute("download");
            } else {
                button.click();
                await sleep(300);
                entry.path = app.state.resultPath;
                const pane = content();
                const img = pane.querySelector("img");
                const frame = pane.querySelector("iframe");
                if (img) {
                    for (let i = 0; i < 50 && !img.complete; i++) await sleep(100);
                    Object.assign(entry, { shown: "img", width: img.naturalWidth, height: img.naturalHeight });
                } else if (frame) {
                    const text = await (await fetch(frame.src)).text();
                    // rows of the page's own tables; a cell may hold a table of its own (the measures)
                    const page = new DOMParser().parseFromString(text, "text/html");
                    const outer = [...page.querySelectorAll("table")].filter(t => !t.parentElement.closest("table"));
                    Object.assign(entry, {
                        shown: "iframe", tables: outer.length,
                        rows: [...page.querySelectorAll("tr")].filter(tr => outer.includes(tr.closest("table"))).length,
                        nested_tables: page.querySelectorAll("table table").length, title: page.title,
                    });
                } else {
                    entry.shown = pane.textContent.slice(0, 200);
                }
            }
            record.results.push(entry);
            save();
        }
    }

    try {
        for (let i = 0; i < 100 && !nav(); i++) await sleep(100);
        if (!location.hash.includes("show=")) document.body.appendChild(out);
        const show = decodeURIComponent((location.hash.match(/show=([^&]+)/) || [])[1] || "");
        if (show) {
            const path = Object.keys(results).find((p) => p.includes(show));
            const kind = results[path].mime_type.startsWith("image/") ? "img" : "html";
            app.setView({ content: kind, contentPath: results[path].data_uri, resultPath: path });
            return;
        }
        record.menu = links(nav()).map((a) => a.textContent.trim()).filter((t) => t);
        for (const category of Object.keys(categories)) {
            await toMenu();
            const single = Object.keys(categories).length === 1;
            byText(nav(), single ? "Results" : category).click();
            await sleep(200);
            const subcategories = Object.keys(categories[category]);
            if (subcategories.length === 1) {
                await openRows(category, subcategories[0]);
                continue;
            }
            for (const subcategory of subcategories) {
                await toMenu();
                byText(nav(), category).click();
                await sleep(200);
                byText(nav(), subcategory).click();
                await sleep(200);
                await openRows(category, subcategory);
            }
        }
    } catch (error) {
        record.errors.push(String(error && error.stack || error));
    } finally {
        record.done = true;
        save();
    }
})();
