// Model and language pickers, filled from GET /v1/models (shared by the Transcribe, Live and Compare views).

import { getJSON } from "./api.js";
import { el, languageName } from "./ui.js";

// Whisper's languages (ISO 639-1 where one exists); names come from Intl.DisplayNames.
const LANGUAGES = (
  "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi " +
  "ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd " +
  "gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue"
).split(" ");

let models = [];

/** The models the server can use now (the `whisper-1` alias is listed separately by the server). */
export async function loadModels() {
  const data = await getJSON("/v1/models");
  models = data.data.filter((m) => m.id !== "whisper-1");
  return models;
}

export function defaultModel() {
  return (models.find((m) => m.default) || models[0] || {}).id || "";
}

export function fillModels(select, preferred) {
  const current = preferred || select.value || defaultModel();
  select.replaceChildren(
    ...models.map((m) =>
      el(
        "option",
        { value: m.id, selected: m.id === current },
        `${m.id}${m.default ? " (default)" : ""}${m.installed ? "" : " (download)"}`,
      ),
    ),
  );
}

/** Fill a language select for the chosen model: English only for `.en` models, else Whisper's list. */
export function fillLanguages(select, modelId) {
  const model = models.find((m) => m.id === modelId);
  const current = select.value;
  const codes = model && !model.multilingual ? ["en"] : LANGUAGES;
  const options = codes.map((code) => ({ code, name: languageName(code) })).sort((a, b) => a.name.localeCompare(b.name));
  select.replaceChildren(
    el("option", { value: "" }, "Auto-detect"),
    ...options.map(({ code, name }) => el("option", { value: code, selected: code === current }, `${name} (${code})`)),
  );
}
