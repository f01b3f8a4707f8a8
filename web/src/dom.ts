// A small DOM helper: elements by id, messages, busy buttons, and new
// elements with their class, text and data attributes in one call.

/** The element with `id`; a missing one is a bug in index.html or here. */
export function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing element #${id}`);
  return found as T;
}
export const input = (id: string): HTMLInputElement => el<HTMLInputElement>(id);
export const button = (id: string): HTMLButtonElement => el<HTMLButtonElement>(id);
export const form = (id: string): HTMLFormElement => el<HTMLFormElement>(id);

/** Shows `text` in a message element (or hides it when text is empty). */
export function show(target: HTMLElement, text: string): void {
  target.textContent = text;
  target.hidden = text === "";
}

/** What a new element starts with. */
export interface Props {
  className?: string;
  text?: string;
  title?: string;
  /** data-* attributes, by their dataset name. */
  data?: Readonly<Record<string, string>>;
}

/** A new element with its class, text, title and data attributes. */
export function make<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}): HTMLElementTagNameMap[K] {
  const made = document.createElement(tag);
  if (props.className !== undefined) made.className = props.className;
  if (props.text !== undefined) made.textContent = props.text;
  if (props.title !== undefined) made.title = props.title;
  for (const [name, value] of Object.entries(props.data ?? {})) made.dataset[name] = value;
  return made;
}

/** A new `<button type="button">` that runs `onClick`. */
export function actionButton(props: Props, onClick: () => void): HTMLButtonElement {
  const made = make("button", props);
  made.type = "button";
  made.addEventListener("click", onClick);
  return made;
}

/** Runs `handle` on submit, instead of the browser's own submission. */
export function onSubmit(id: string, handle: () => void): void {
  form(id).addEventListener("submit", (event) => {
    event.preventDefault();
    handle();
  });
}

/**
 * Tells a form's "input" listeners that its fields changed: setting an
 * input's value from code fires no event of its own.
 */
export function inputsChanged(id: string): void {
  form(id).dispatchEvent(new Event("input"));
}

/** Disables `btn` (with a busy label) while `work` runs. */
export async function busy<T>(btn: HTMLButtonElement, label: string, work: () => Promise<T>): Promise<T> {
  const idle = btn.textContent;
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  btn.textContent = label;
  try {
    return await work();
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    btn.textContent = idle;
  }
}
