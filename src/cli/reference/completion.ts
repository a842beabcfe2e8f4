// bash and zsh completion from the commands' own definitions: command names, each command's
// options (those that take a value complete file names), and the words a first argument takes.
import type { Command } from "../command.ts";

interface Spec {
  name: string;
  summary: string;
  flags: string[];
  valued: string[];
  actions: string[];
}

function specOf(c: Command): Spec {
  const flags: string[] = [];
  const valued: string[] = [];
  for (const [name, o] of Object.entries(c.options ?? {})) {
    if (name === "arrow") continue; // explain's '->' read as an option
    const spellings = [`--${name}`, ...(o.short ? [`-${o.short}`] : [])];
    flags.push(...spellings);
    if (o.type === "string") valued.push(...spellings);
  }
  flags.push("--help");
  return { name: c.name, summary: c.summary, flags, valued, actions: c.actions ?? [] };
}

/** A bash word list: no quoting needed (names are [a-z0-9-]). */
const words = (list: string[]) => list.join(" ");

export function bashCompletion(commands: readonly Command[]): string {
  const specs = commands.map(specOf);
  const cases = specs
    .map(
      (s) =>
        `    ${s.name}) flags="${words(s.flags)}"; valued="${words(s.valued)}"; actions="${words(s.actions)}" ;;`,
    )
    .join("\n");
  return `# bash completion for moat (generated from its commands' definitions)
_moat() {
  local cur prev flags valued actions
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  if [[ $COMP_CWORD -eq 1 ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${words(specs.map((s) => s.name))} --help --version" -- "$cur")
    return
  fi
  case \${COMP_WORDS[1]} in
${cases}
    *) return ;;
  esac
  if [[ " $valued " == *" $prev "* ]]; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  elif [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
  elif [[ -n $actions && $COMP_CWORD -eq 2 ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$actions" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
}
complete -o filenames -F _moat moat
`;
}

/** A zsh single-quoted string. */
const zq = (text: string) => `'${text.replace(/'/g, "'\\''")}'`;

export function zshCompletion(commands: readonly Command[]): string {
  const specs = commands.map(specOf);
  const described = specs.map((s) => `    ${zq(`${s.name}:${s.summary.replace(/:/g, "\\:")}`)}`);
  const cases = specs.map((s) => {
    const args = s.flags.map((f) => zq(s.valued.includes(f) ? `*${f}:value:_files` : `*${f}`));
    const rest = s.actions.length ? zq(`1:action:(${s.actions.join(" ")})`) : zq("*:file:_files");
    return `    ${s.name}) _arguments -s ${[...args, rest].join(" ")} ;;`;
  });
  return `#compdef moat
# zsh completion for moat (generated from its commands' definitions)
_moat() {
  local -a commands
  commands=(
${described.join("\n")}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'moat command' commands
    return
  fi
  local cmd=$words[2]
  shift words
  (( CURRENT-- ))
  case $cmd in
${cases.join("\n")}
  esac
}
_moat "$@"
`;
}
