import { domainToASCII, domainToUnicode } from "node:url";
import { platformError } from "./errors.ts";

/**
 * The one canonical form of an email address, stored and compared everywhere (accounts, sign-in, emailed flows,
 * invitations, the CLI), and the addresses refused because two people could not tell them apart.
 *
 * Written here rather than taken from npm: the packages that normalise addresses (normalize-email, email-normalizer,
 * validator's normalizeEmail) fold provider-specific dots and `+tags`, which changes which mailbox an address names,
 * and none refuses invisible characters or script mixes; `confusables` maps look-alikes to a skeleton, which answers
 * a different question (is this string confusable with that one). What is needed is small and all of it is in the
 * runtime: NFKC (`String.prototype.normalize`), Unicode property escapes over V8's own Unicode data (no table of
 * ours to keep current) and WHATWG's UTS #46 domain processing (`node:url`).
 */
export type EmailCheck = { ok: true; email: string } | { ok: false; reason: string };

/** NFKC, trimmed, lower-cased (NFKC again: lower-casing can leave a string that NFKC would still change). */
export function canonicalEmail(input: string): string {
  return input.normalize("NFKC").trim().toLowerCase().normalize("NFKC");
}

/** The canonical address, or why it is refused (a phrase that follows "The email address"). */
export function normalizeEmail(input: string): EmailCheck {
  const hidden = invisibleIn(input.trim());
  if (hidden) return hidden;
  let email = canonicalEmail(input);
  // NFKC can make characters the raw check did not see: "¨" becomes a space and a combining mark, "＠" an "@"
  if (invisibleIn(email)) return refuse("contains a character that becomes a space or an invisible character when normalised (NFKC)");
  const at = email.indexOf("@");
  if (at < 0 || email.indexOf("@", at + 1) >= 0) return refuse("must contain exactly one @");
  const local = email.slice(0, at);
  let domain = email.slice(at + 1);
  if (!local) return refuse("has nothing before the @");
  if (local.length > 64) return refuse("has more than 64 characters before the @");
  const isAscii = /^[\x21-\x7e]*$/.test(domain);
  if (!isAscii || domain.split(".").some((l) => l.startsWith("xn--"))) {
    // one spelling per domain: "bücher.de" and "xn--bcher-kva.de" are the same mailbox, stored in Unicode
    if (!domainToASCII(domain)) return refuse(`has a domain that is not a valid internationalised domain name (${domain})`);
    const unicode = domainToUnicode(domain);
    if (!unicode) return refuse(`has a domain that is not a valid internationalised domain name (${domain})`);
    domain = canonicalEmail(unicode);
    if (invisibleIn(domain)) return refuse(`has a domain that is not a valid internationalised domain name (${domain})`);
  }
  const labels = domain.split(".");
  if (labels.length < 2) return refuse("needs a domain with a dot, like example.com");
  if (labels.some((l) => l === "")) return refuse("has an empty part in its domain (two dots together, or a dot at an end)");
  if (labels.some((l) => l.length > 63)) return refuse("has a domain part longer than 63 characters");
  const localMix = scriptMix(local);
  if (localMix) return refuse(`mixes ${localMix} letters before the @`);
  for (const label of labels) {
    const mix = scriptMix(label);
    if (mix) return refuse(`mixes ${mix} letters in the domain part "${label}"`);
  }
  email = `${local}@${domain}`;
  if (email.length > 254) return refuse("is longer than 254 characters");
  return { ok: true, email };
}

/** The canonical address, or a 400 VALIDATION_FAILED naming `field` and why the address is refused. */
export function requireEmail(input: string, field = "email"): string {
  const checked = normalizeEmail(input);
  if (!checked.ok) throw platformError("VALIDATION_FAILED", `The email address ${checked.reason}.`, { field });
  return checked.email;
}

const refuse = (reason: string): EmailCheck => ({ ok: false, reason });

/**
 * Characters that show as nothing or move the text around: controls, format characters (zero-width space, joiner
 * and non-joiner, BOM, soft hyphen, bidi controls: category Cf), other default-ignorables (variation selectors,
 * Hangul fillers), private-use, unassigned and lone surrogates, and white space inside the address.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Default_Ignorable_Code_Point}\p{White_Space}]/u;

function invisibleIn(s: string): EmailCheck | undefined {
  const m = INVISIBLE.exec(s);
  if (!m) return undefined;
  const cp = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
  const what = /\s/u.test(m[0]) ? "a space" : "an invisible or control character";
  return refuse(`contains ${what} (U+${cp}); type it again without it`);
}

/**
 * Unicode's scripts (long names, Unicode 16). A name the runtime's Unicode data does not know is skipped; a letter
 * of a script not listed counts as one script of its own ("Unknown"), so it may stand alone but not mix.
 */
const SCRIPT_NAMES = [
  "Latin",
  "Greek",
  "Cyrillic",
  "Armenian",
  "Hebrew",
  "Arabic",
  "Syriac",
  "Thaana",
  "Nko",
  "Samaritan",
  "Mandaic",
  "Devanagari",
  "Bengali",
  "Gurmukhi",
  "Gujarati",
  "Oriya",
  "Tamil",
  "Telugu",
  "Kannada",
  "Malayalam",
  "Sinhala",
  "Thai",
  "Lao",
  "Tibetan",
  "Myanmar",
  "Georgian",
  "Hangul",
  "Ethiopic",
  "Cherokee",
  "Canadian_Aboriginal",
  "Ogham",
  "Runic",
  "Khmer",
  "Mongolian",
  "Hiragana",
  "Katakana",
  "Bopomofo",
  "Han",
  "Yi",
  "Old_Italic",
  "Gothic",
  "Deseret",
  "Tagalog",
  "Hanunoo",
  "Buhid",
  "Tagbanwa",
  "Limbu",
  "Tai_Le",
  "Linear_B",
  "Ugaritic",
  "Shavian",
  "Osmanya",
  "Cypriot",
  "Braille",
  "Buginese",
  "Coptic",
  "New_Tai_Lue",
  "Glagolitic",
  "Tifinagh",
  "Syloti_Nagri",
  "Old_Persian",
  "Kharoshthi",
  "Balinese",
  "Cuneiform",
  "Phoenician",
  "Phags_Pa",
  "Sundanese",
  "Lepcha",
  "Ol_Chiki",
  "Vai",
  "Saurashtra",
  "Kayah_Li",
  "Rejang",
  "Lycian",
  "Carian",
  "Lydian",
  "Cham",
  "Tai_Tham",
  "Tai_Viet",
  "Avestan",
  "Egyptian_Hieroglyphs",
  "Lisu",
  "Bamum",
  "Javanese",
  "Meetei_Mayek",
  "Imperial_Aramaic",
  "Old_South_Arabian",
  "Inscriptional_Parthian",
  "Inscriptional_Pahlavi",
  "Old_Turkic",
  "Kaithi",
  "Batak",
  "Brahmi",
  "Chakma",
  "Meroitic_Cursive",
  "Meroitic_Hieroglyphs",
  "Miao",
  "Sharada",
  "Sora_Sompeng",
  "Takri",
  "Caucasian_Albanian",
  "Bassa_Vah",
  "Duployan",
  "Elbasan",
  "Grantha",
  "Pahawh_Hmong",
  "Khojki",
  "Linear_A",
  "Mahajani",
  "Manichaean",
  "Mende_Kikakui",
  "Modi",
  "Mro",
  "Old_North_Arabian",
  "Nabataean",
  "Palmyrene",
  "Pau_Cin_Hau",
  "Old_Permic",
  "Psalter_Pahlavi",
  "Siddham",
  "Khudawadi",
  "Tirhuta",
  "Warang_Citi",
  "Ahom",
  "Anatolian_Hieroglyphs",
  "Hatran",
  "Multani",
  "Old_Hungarian",
  "SignWriting",
  "Adlam",
  "Bhaiksuki",
  "Marchen",
  "Newa",
  "Osage",
  "Tangut",
  "Masaram_Gondi",
  "Nushu",
  "Soyombo",
  "Zanabazar_Square",
  "Dogra",
  "Gunjala_Gondi",
  "Makasar",
  "Medefaidrin",
  "Hanifi_Rohingya",
  "Sogdian",
  "Old_Sogdian",
  "Elymaic",
  "Nandinagari",
  "Nyiakeng_Puachue_Hmong",
  "Wancho",
  "Chorasmian",
  "Dives_Akuru",
  "Khitan_Small_Script",
  "Yezidi",
  "Cypro_Minoan",
  "Old_Uyghur",
  "Tangsa",
  "Toto",
  "Vithkuqi",
  "Kawi",
  "Nag_Mundari",
  "Garay",
  "Gurung_Khema",
  "Kirat_Rai",
  "Ol_Onal",
  "Sunuwar",
  "Todhri",
  "Tulu_Tigalari",
];
const SCRIPTS: [string, RegExp][] = [...new Set(SCRIPT_NAMES)].flatMap((name): [string, RegExp][] => {
  try {
    return [[name, new RegExp(`\\p{Script=${name}}`, "u")]];
  } catch {
    return [];
  }
});
/** Digits, punctuation, symbols and combining marks belong to every script. */
const NEUTRAL = /[\p{Script=Common}\p{Script=Inherited}]/u;

/**
 * Scripts that are written together, so mixing them is not a disguise (UTS #39's "highly restrictive" level):
 * Japanese, Chinese with Bopomofo, Korean, each also with Latin.
 */
const WRITTEN_TOGETHER = [new Set(["Latin", "Han", "Hiragana", "Katakana"]), new Set(["Latin", "Han", "Bopomofo"]), new Set(["Latin", "Han", "Hangul"])];

/** "Latin and Cyrillic" when `part` mixes scripts that are not written together; otherwise undefined. */
function scriptMix(part: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the whole ASCII range, control characters included
  if (/^[\x00-\x7f]*$/.test(part)) return undefined; // ASCII letters are all Latin
  const found = new Set<string>();
  for (const ch of part) {
    if (NEUTRAL.test(ch)) continue;
    found.add(SCRIPTS.find(([, re]) => re.test(ch))?.[0] ?? "Unknown");
  }
  if (found.size <= 1 || WRITTEN_TOGETHER.some((set) => [...found].every((s) => set.has(s)))) return undefined;
  return [...found].map((s) => s.replace(/_/g, " ")).join(" and ");
}
