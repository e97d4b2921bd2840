// A small modal with a note field: ack, resolve. The native <dialog> opened
// with showModal() makes the rest of the page inert (focus stays inside),
// Esc closes it, Enter in the note submits.

import { h } from "./dom.js";
import { t } from "./i18n.js";

// Resolves to the note (a string, maybe empty) or null when cancelled.
// check(note) may return an error text to keep the dialog open.
export function askNote(title, summary, submitLabel, check) {
  return new Promise((resolve) => {
    const input = h("input", { id: "note-input", type: "text", name: "note", autocomplete: "off", maxlength: "255" });
    const err = h("p.form-error", { role: "alert" });
    const form = h("form", { method: "dialog" },
      h("h2", { text: title }),
      summary,
      h("label", { for: "note-input", text: t("alerts.note") }),
      input, err,
      h("div.buttons",
        h("button.secondary", { type: "button", value: "cancel", text: t("cancel"), onclick: () => finish(null) }),
        h("button.primary", { type: "submit", value: "ok", text: submitLabel })));
    const dlg = h("dialog.note-dialog", { "aria-label": title }, form);
    let done = false;
    function finish(v) {
      if (done) return;
      done = true;
      if (dlg.open) dlg.close();
      dlg.remove();
      resolve(v);
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const msg = check ? check(input.value) : null;
      if (msg) {
        err.textContent = msg;
        input.focus();
        return;
      }
      finish(input.value);
    });
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      finish(null);
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}
