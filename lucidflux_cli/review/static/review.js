// lucidflux review page. Draws the rows of the JSON blob in #review-data. Text goes in through
// textContent and URLs through properties, never innerHTML: no file name or message is parsed as HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const PAGE_SIZE = 50;
  const state = { filter: "all", text: "", page: 0 };
  const STATUS_WORDS = { failed: "failed", worse: "got worse", done: "restored", skipped: "done earlier",
                         not_started: "not started" };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function header() {
    const top = el("header");
    top.append(el("h1", "", data.title), el("p", "subtitle", data.subtitle));
    if (data.table) top.append(table(data.table));
    return top;
  }

  function table(cells) {
    const node = el("table", "means");
    cells.forEach(function (line, index) {
      const tr = el("tr");
      line.forEach(function (cell) { tr.append(el(index === 0 ? "th" : "td", "", cell)); });
      node.append(tr);
    });
    return node;
  }

  function controls() {
    const bar = el("nav", "controls");
    [["all", "all"], ["failed", "failed"], ["worse", "got worse"]].forEach(function (pair) {
      const button = el("button", "filter", pair[1] + " (" + data.counts[pair[0]] + ")");
      button.dataset.filter = pair[0];
      button.addEventListener("click", function () { state.filter = pair[0]; state.page = 0; draw(); });
      bar.append(button);
    });
    const search = el("input");
    search.id = "name-filter";
    search.type = "search";
    search.placeholder = "filter by name";
    search.addEventListener("input", function () {
      state.text = search.value.toLowerCase();
      state.page = 0;
      draw();
    });
    const previous = el("button", "pager", "‹ previous");
    previous.id = "previous";
    previous.addEventListener("click", function () { state.page -= 1; draw(); });
    const next = el("button", "pager", "next ›");
    next.id = "next";
    next.addEventListener("click", function () { state.page += 1; draw(); });
    bar.append(search, previous, el("span", "position"), next);
    return bar;
  }

  function selected() {
    return data.rows.filter(function (row) {
      if (state.filter !== "all" && row.status !== state.filter) return false;
      return !state.text || row.name.toLowerCase().indexOf(state.text) >= 0;
    });
  }

  function cellNode(cell, column, withValues) {
    const box = el("figure", "cell");
    box.append(el("figcaption", "column", column));
    if (cell.thumb) {
      const img = el("img", "thumb");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = column;
      img.src = cell.thumb;
      box.append(img);
    } else {
      box.append(el("div", "no-picture", cell.missing || (cell.label ? "no preview" : "—")));
    }
    if (cell.link) {
      const a = el("a", "file", cell.label || "file");
      a.href = cell.link;
      a.rel = "noopener noreferrer";
      box.append(a);
    } else if (cell.label) {
      box.append(el("span", "file", cell.label));
    }
    if (withValues) {
      cell.values.forEach(function (pair) { box.append(el("div", "value", pair[0] + " " + pair[1])); });
    }
    return box;
  }

  function rowNode(row) {
    const card = el("article", "row " + row.status);
    card.dataset.status = row.status;
    const title = el("div", "title");
    title.append(el("span", "status", STATUS_WORDS[row.status] || row.status), el("span", "name", row.name));
    card.append(title);
    if (row.reason) card.append(el("div", "reason", row.reason));
    const cells = el("div", "cells");
    // a row with before/after scores shows them in its own table, not under each picture
    row.cells.forEach(function (cell, index) {
      cells.append(cellNode(cell, data.columns[index], !row.scores.length));
    });
    card.append(cells);
    if (row.facts.length) {
      const facts = el("div", "facts");
      row.facts.forEach(function (fact) { facts.append(el("span", "fact", fact[0] + ": " + fact[1])); });
      card.append(facts);
    }
    if (row.scores.length) {
      card.append(table([["metric", "input", "output", "change"]].concat(row.scores.map(function (s) {
        return [s[0] + (s[4] ? " (worse)" : ""), s[1], s[2], s[3]];
      }))));
      card.lastChild.className = "scores";
    }
    if (row.cells.filter(function (cell) { return cell.view; }).length >= 2) {
      const button = el("button", "compare", "compare before/after");
      button.addEventListener("click", function () { openCompare(row); });
      card.append(button);
    }
    return card;
  }

  // ------------------------------------------------------------------ before/after comparison

  const dialog = el("div", "compare-dialog");
  dialog.id = "compare";
  dialog.hidden = true;
  const bar = el("div", "compare-bar");
  const close = el("button", "", "close");
  const pickBefore = el("select");
  const pickAfter = el("select");
  pickBefore.id = "compare-pick-before";
  pickAfter.id = "compare-pick-after";
  const slider = el("input");
  slider.id = "compare-slider";
  slider.type = "range";
  slider.min = "0";
  slider.max = "100";
  slider.value = "50";
  const caption = el("span", "compare-name");
  bar.append(close, el("span", "", "before"), pickBefore, slider, pickAfter, el("span", "", "after"),
             caption);
  const stage = el("div", "compare-stage");
  const frame = el("div", "compare-frame");
  const after = el("img");
  const before = el("img", "before");
  after.id = "compare-after";
  before.id = "compare-before";
  frame.append(after, before);
  stage.append(frame);
  dialog.append(bar, stage);
  let current = null;

  function openCompare(row) {
    current = row;
    [pickBefore, pickAfter].forEach(function (pick) {
      pick.replaceChildren();
      row.cells.forEach(function (cell, index) {
        if (!cell.view) return;
        const option = el("option", "", data.columns[index]);
        option.value = String(index);
        pick.append(option);
      });
    });
    const usable = row.cells.map(function (cell, index) { return cell.view ? index : -1; })
      .filter(function (index) { return index >= 0; });
    const first = usable.indexOf(data.compare[0]) >= 0 ? data.compare[0] : usable[0];
    const last = usable.indexOf(data.compare[1]) >= 0 ? data.compare[1] : usable[usable.length - 1];
    pickBefore.value = String(first);
    pickAfter.value = String(last);
    caption.textContent = row.name;
    dialog.hidden = false;
    showPictures();
  }

  function showPictures() {
    // Loaded only now: the full files, never fetched while browsing the list.
    after.src = current.cells[Number(pickAfter.value)].view;
    before.src = current.cells[Number(pickBefore.value)].view;
    clip();
  }

  function clip() {
    before.style.clipPath = "inset(0 " + (100 - Number(slider.value)) + "% 0 0)";
  }

  slider.addEventListener("input", clip);
  pickBefore.addEventListener("change", showPictures);
  pickAfter.addEventListener("change", showPictures);
  close.addEventListener("click", function () { dialog.hidden = true; });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") dialog.hidden = true;
  });

  // ---------------------------------------------------------------------------------- drawing

  const list = el("main", "rows");
  const nav = controls();

  function draw() {
    const rows = selected();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const shown = rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
    list.replaceChildren.apply(list, shown.map(rowNode));
    if (!shown.length) list.append(el("p", "empty", "no photos match"));
    nav.querySelector(".position").textContent = "page " + (state.page + 1) + " of " + pages + " (" +
      rows.length + " photos)";
    nav.querySelector("#previous").disabled = state.page === 0;
    nav.querySelector("#next").disabled = state.page >= pages - 1;
    nav.querySelectorAll("button.filter").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === state.filter));
    });
  }

  document.body.append(header(), nav, list, dialog);
  draw();
})();
