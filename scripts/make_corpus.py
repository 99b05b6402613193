#!/usr/bin/python3
"""Synthetic English + German speech corpus for training and testing the demo model.

Usage:
    make_corpus.py OUT_DIR [--seed 1] [--train 12000] [--test 400] [--jobs 2]
                   [--splits train,test]

Writes OUT_DIR/train.tsv and OUT_DIR/test.tsv (qasr-batch manifests: path, id, ref_language,
voice, subset, text; paths relative to OUT_DIR) and the audio under OUT_DIR/audio/<split>/.
The spoken language is in `ref_language`, not `language`: qasr-batch would force a `language`
column's value into the prompt, and the test is that the model detects it (score.py reads
`ref_language`; qasr-batch ignores it).
Everything is a function of --seed and the entry index: rerunning gives byte-identical files
(espeak-ng is deterministic, every sox call runs with -R, noise comes from fixed noise beds),
and the first N test entries are the same for any --test >= N (the CI test generates a
prefix of the held-out split). Files are written atomically and existing ones are kept, so an
interrupted run resumes, and a larger --train extends an existing corpus.

Text: sentences drawn from the templates below (12 English, 12 German) over word lists of
names, numbers (1-99 in words, German compounds such as "dreiundzwanzig"), ordinals, days,
months, cities, everyday nouns (singular and plural), verbs and adjectives: 782
distinct words (--count-words). Sentences are cased and punctuated the way they are written, numbers in
words, since that is what is spoken.

Speech: espeak-ng with a base voice (English: en, en-us, en-gb-scotland, en-gb-x-rp,
en-gb-x-gbclan, en-gb-x-gbcwmd, en-029, en-us-nyc; German: de) and a voice variant
(TRAIN_VARIANTS: 45 of espeak-ng's variants), speed 130-210 words per minute, pitch 25-75,
word gap 0-2. Then sox: 50-400 ms of silence before and after, white/pink/brown noise from
a fixed bed at a random offset (SNR roughly 20-45 dB, none for a fifth of the files), a
random peak level between -25 and -1 dBFS, a mild bass/treble tilt, and one of: WAV 16-bit,
FLAC 16/24-bit, Ogg Vorbis; 8, 11.025, 16, 22.05, 24, 32, 44.1 or 48 kHz; mono or stereo.

Held-out test split: its sentences are never produced in the training split (training draws
skip any test sentence), and every fourth test entry (subset "unseen-voice") uses the
variant HELDOUT_VARIANT, which no training entry uses; the others (subset "seen-voice") use
training variants. Languages: 70% English, 30% German in both splits.
"""

import argparse
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import wave

# ----------------------------------------------------------------------------------------
# word lists

EN_NAMES = ("Anna Ben Clara David Emma Frank Grace Henry Isabel Jack Karen Leo Maria Nina "
            "Oscar Paul Rosa Sam Tom Lucy Peter Sarah Mark Julia Victor Helen Daniel Laura "
            "Martin Sophie Robert Alice George Linda Kevin Eva Simon Olivia Hugo Mia").split()
DE_NAMES = EN_NAMES[:24] + "Jonas Lena Felix Klaus Greta Lukas Hannah Stefan Heike Moritz".split()

EN_ONES = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
           "fifteen sixteen seventeen eighteen nineteen").split()
EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
DE_ONES = ("eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn "
           "fünfzehn sechzehn siebzehn achtzehn neunzehn").split()
DE_TENS = "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()
EN_ORD = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
          "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth "
          "twentieth").split()
DE_ORD = ("ersten zweiten dritten vierten fünften sechsten siebten achten neunten zehnten "
          "elften zwölften dreizehnten vierzehnten fünfzehnten sechzehnten siebzehnten "
          "achtzehnten neunzehnten zwanzigsten").split()

EN_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
DE_DAYS = "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag".split()
EN_MONTHS = ("January February March April May June July August September October November "
             "December").split()
DE_MONTHS = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split()
CITIES = "London Paris Berlin Madrid Rome Vienna Tokyo Boston Chicago Dublin Oslo Prague".split()
DE_CITIES = "London Paris Berlin Madrid Rom Wien Tokio Hamburg München Köln Dresden Zürich".split()

# (singular, plural)
EN_NOUNS = [tuple(p.split("/")) for p in (
    "apple/apples book/books box/boxes bottle/bottles chair/chairs table/tables cup/cups "
    "dog/dogs cat/cats horse/horses bird/birds car/cars bus/buses house/houses window/windows "
    "door/doors key/keys letter/letters phone/phones shirt/shirts shoe/shoes hat/hats bag/bags "
    "ticket/tickets flower/flowers tree/trees bridge/bridges egg/eggs orange/oranges "
    "banana/bananas lemon/lemons tomato/tomatoes potato/potatoes carrot/carrots fish/fish "
    "sandwich/sandwiches pencil/pencils picture/pictures clock/clocks lamp/lamps bed/beds "
    "boat/boats bicycle/bicycles computer/computers camera/cameras guitar/guitars song/songs "
    "story/stories newspaper/newspapers umbrella/umbrellas jacket/jackets coat/coats "
    "glove/gloves candle/candles basket/baskets blanket/blankets pillow/pillows mirror/mirrors "
    "spoon/spoons fork/forks knife/knives plate/plates bowl/bowls glass/glasses cake/cakes "
    "map/maps chicken/chickens sheep/sheep child/children friend/friends").split()]
EN_PLACES = ("market station library park beach office school hospital airport bakery garden "
             "museum kitchen river harbor cinema").split()
EN_ROOMS = "kitchen garden office hallway bedroom garage basement attic".split()
EN_RELATIVES = "brother sister mother father uncle aunt cousin neighbor grandmother teacher".split()
EN_COLORS = "red blue green yellow black white brown gray purple pink".split()
EN_ADJS = ("big small old new warm cold clean heavy cheap expensive soft long short tall "
           "fresh sweet dark bright quiet strong").split()
EN_WEATHER = "sunny rainy cloudy windy warm cold foggy stormy".split()
EN_VERBS_PAST = ("bought sold found lost painted carried washed cleaned opened closed fixed "
                 "counted ordered borrowed cooked saw took brought packed moved dropped picked "
                 "wanted needed liked").split()
EN_VERBS_BASE = ("buy sell find paint carry wash clean open close fix count order borrow cook "
                 "see take bring pack move pick").split()
EN_VEHICLES = "train bus boat plane ferry".split()
EN_EVENTS = "party picnic meeting wedding concert dinner".split()

# (singular, plural, article nominative)
DE_NOUNS = [tuple(p.split("/")) for p in (
    "Apfel/Äpfel/der Buch/Bücher/das Tisch/Tische/der Stuhl/Stühle/der Tasse/Tassen/die "
    "Hund/Hunde/der Katze/Katzen/die Pferd/Pferde/das Vogel/Vögel/der Auto/Autos/das "
    "Haus/Häuser/das Fenster/Fenster/das Tür/Türen/die Schlüssel/Schlüssel/der "
    "Brief/Briefe/der Telefon/Telefone/das Hemd/Hemden/das Schuh/Schuhe/der Hut/Hüte/der "
    "Tasche/Taschen/die Blume/Blumen/die Baum/Bäume/der Brücke/Brücken/die "
    "Flasche/Flaschen/die Kuchen/Kuchen/der Ei/Eier/das Banane/Bananen/die "
    "Zitrone/Zitronen/die Tomate/Tomaten/die Kartoffel/Kartoffeln/die Fisch/Fische/der "
    "Bleistift/Bleistifte/der Bild/Bilder/das Uhr/Uhren/die Lampe/Lampen/die Bett/Betten/das "
    "Boot/Boote/das Fahrrad/Fahrräder/das Computer/Computer/der Kamera/Kameras/die "
    "Gitarre/Gitarren/die Lied/Lieder/das Zeitung/Zeitungen/die Jacke/Jacken/die "
    "Mantel/Mäntel/der Kerze/Kerzen/die Korb/Körbe/der Decke/Decken/die Kissen/Kissen/das "
    "Spiegel/Spiegel/der Löffel/Löffel/der Gabel/Gabeln/die Messer/Messer/das "
    "Teller/Teller/der Glas/Gläser/das Karte/Karten/die Brot/Brote/das Kind/Kinder/das "
    "Freund/Freunde/der").split()]
DE_ADJS = ("groß klein alt neu warm kalt sauber schwer billig teuer weich lang kurz frisch "
           "süß dunkel hell leise stark rot blau grün gelb schwarz weiß").split()
DE_WEATHER = "sonnig regnerisch bewölkt windig warm kalt neblig stürmisch".split()
DE_JOBS = "Lehrer Lehrerin Arzt Ärztin Koch Köchin Bäcker Fahrer Gärtner Maler".split()
DE_VERBS_3SG = "kauft verkauft findet malt trägt wäscht öffnet zählt bestellt kocht sieht holt".split()
DE_VEHICLES = [("Zug", "der"), ("Bus", "der"), ("Bahn", "die"), ("Schiff", "das"),
               ("Flugzeug", "das")]
DE_ROOMS = [("Küche", "In der"), ("Garten", "Im"), ("Büro", "Im"), ("Flur", "Im"),
            ("Keller", "Im"), ("Schlafzimmer", "Im")]


def en_number(n):
    if n < 20:
        return EN_ONES[n - 1]
    t, o = divmod(n, 10)
    return EN_TENS[t - 2] + ("-" + EN_ONES[o - 1] if o else "")


def de_number(n):
    if n == 1:
        return "eins"
    if n < 20:
        return DE_ONES[n - 1]
    t, o = divmod(n, 10)
    return (("ein" if o == 1 else DE_ONES[o - 1]) + "und" if o else "") + DE_TENS[t - 2]


def pick_count(r):
    """Small counts more often than large ones."""
    return r.choice([r.randint(2, 12), r.randint(2, 12), r.randint(13, 99)])


def en_sentence(r):
    name, name2 = r.sample(EN_NAMES, 2)
    sg, pl = r.choice(EN_NOUNS)
    n = pick_count(r)
    when = r.choice(["on " + r.choice(EN_DAYS), "this morning", "yesterday", "last night",
                     "in " + r.choice(EN_MONTHS), "after lunch", "every week", "today"])
    k = r.randrange(12)
    if k == 0:
        return "%s %s %s %s %s %s." % (name, r.choice(EN_VERBS_PAST), en_number(n),
                                       r.choice(EN_COLORS), pl, when)
    if k == 1:
        sg2 = r.choice(EN_NOUNS)[0]
        prep = r.choice(["under", "behind", "next to", "in front of", "on", "near"])
        return "The %s %s is %s the %s." % (r.choice(EN_ADJS), sg, prep, sg2)
    if k == 2:
        return "%s and %s went to the %s %s." % (name, name2, r.choice(EN_PLACES), when)
    if k == 3:
        return "Please %s the %s %s before %s." % (
            r.choice(EN_VERBS_BASE), r.choice(EN_COLORS), sg,
            r.choice(["noon", "midnight", "dinner", r.choice(EN_DAYS)]))
    if k == 4:
        sg2, pl2 = r.choice(EN_NOUNS)
        return "We need %s %s and %s %s for the %s." % (en_number(n), pl, en_number(pick_count(r)),
                                                         pl2, r.choice(EN_EVENTS))
    if k == 5:
        clock = en_number(r.randint(1, 12))
        t = r.choice([clock, "half past " + clock, "quarter to " + clock, clock + " thirty"])
        return "The %s leaves at %s in the %s." % (r.choice(EN_VEHICLES), t,
                                                   r.choice(["morning", "afternoon", "evening"]))
    if k == 6:
        return "My %s has a %s %s in the %s." % (r.choice(EN_RELATIVES), r.choice(EN_ADJS), sg,
                                                 r.choice(EN_ROOMS))
    if k == 7:
        return "Did %s %s the %s %s?" % (name, r.choice(EN_VERBS_BASE), pl, when)
    if k == 8:
        return "%s's birthday is on the %s of %s." % (name, r.choice(EN_ORD), r.choice(EN_MONTHS))
    if k == 9:
        return "It costs %s dollars and %s cents." % (en_number(pick_count(r)),
                                                     en_number(r.randint(1, 99)))
    if k == 10:
        return "There are %s %s %s in the %s." % (en_number(n), r.choice(EN_ADJS), pl,
                                                  r.choice(EN_ROOMS))
    return "The weather in %s is %s %s." % (r.choice(CITIES), r.choice(EN_WEATHER),
                                            r.choice(["today", "tonight", "this week",
                                                      "on " + r.choice(EN_DAYS)]))


def de_sentence(r):
    name, name2 = r.sample(DE_NAMES, 2)
    sg, pl, art = r.choice(DE_NOUNS)
    n = pick_count(r)
    day = "am " + r.choice(DE_DAYS)
    k = r.randrange(12)
    if k == 0:
        return "%s %s %s %s %s." % (name, r.choice(DE_VERBS_3SG), de_number(n), pl,
                                    r.choice([day, "heute", "gestern", "morgen"]))
    if k == 1:
        return "%s %s ist %s." % (art.capitalize(), sg, r.choice(DE_ADJS))
    if k == 2:
        return "%s und %s fahren %s nach %s." % (name, name2, r.choice(["morgen", "heute", day]),
                                                 r.choice(DE_CITIES))
    if k == 3:
        veh, vart = r.choice(DE_VEHICLES)
        return "%s %s fährt um %s Uhr." % (vart.capitalize(), veh, de_number(r.randint(1, 12))
                                           .replace("eins", "ein"))
    if k == 4:
        return "Wir brauchen %s %s für das Fest." % (de_number(n), pl)
    if k == 5:
        return "%s wohnt in %s und arbeitet als %s." % (name, r.choice(DE_CITIES),
                                                       r.choice(DE_JOBS))
    if k == 6:
        return "Hast du die %s %s gesehen?" % (de_number(n), pl)
    if k == 7:
        room, prep = r.choice(DE_ROOMS)
        return "%s %s stehen %s %s." % (prep, room, de_number(n), pl)
    if k == 8:
        return "Heute ist das Wetter in %s %s." % (r.choice(DE_CITIES), r.choice(DE_WEATHER))
    if k == 9:
        return "Das kostet %s Euro und %s Cent." % (de_number(pick_count(r)),
                                                   de_number(r.randint(1, 99)))
    if k == 10:
        return "%s hat am %s %s Geburtstag." % (name, r.choice(DE_ORD), r.choice(DE_MONTHS))
    return "%s sieht %s %s %s." % (name, de_number(n), pl, r.choice([day, "im Park", "am Fluss",
                                                                     "in der Stadt"]))


# ----------------------------------------------------------------------------------------
# voices and audio conditions

EN_BASES = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
            "en-029", "en-us-nyc"]
DE_BASES = ["de"]
TRAIN_VARIANTS = ("m1 m2 m4 m5 m6 m7 m8 f1 f2 f4 f5 klatt klatt2 klatt3 klatt4 adam Alex "
                  "Alicia Andy Annie aunty belinda benjamin boris caleb david ed edward Gene "
                  "gustave Henrique Hugo iven Jacky john Lee linda max Michael Mike paul "
                  "quincy rob robert steph").split()
HELDOUT_VARIANT = "f3"
RATES = [8000, 11025, 16000, 16000, 22050, 24000, 32000, 44100, 48000]
NOISE_BED_SECONDS = 30
NOISES = ["whitenoise", "pinknoise", "brownnoise"]


def entry_params(seed, split, i):
    """Everything about entry i of a split, from (seed, split, i) only."""
    r = random.Random("%d:%s:%d" % (seed, split, i))
    lang = "German" if r.random() < 0.3 else "English"
    unseen = split == "test" and i % 4 == 3
    variant = HELDOUT_VARIANT if unseen else r.choice(TRAIN_VARIANTS)
    base = r.choice(DE_BASES if lang == "German" else EN_BASES)
    fmt = r.choice(["wav", "flac", "ogg"])
    p = dict(
        lang=lang, voice=base + "+" + variant, subset="unseen-voice" if unseen else "seen-voice",
        speed=r.randint(130, 210), pitch=r.randint(25, 75), gap=r.choice([0, 0, 1, 2]),
        lead=round(r.uniform(0.05, 0.4), 3), trail=round(r.uniform(0.05, 0.4), 3),
        noise=r.choice(NOISES), noise_off=round(r.uniform(0, NOISE_BED_SECONDS - 12), 3),
        noise_db=None if r.random() < 0.2 else round(r.uniform(-45, -20), 1),
        level_db=round(r.uniform(-25, -1), 1),
        bass=round(r.uniform(-3, 3), 1), treble=round(r.uniform(-3, 3), 1),
        fmt=fmt, rate=r.choice(RATES), channels=r.choice([1, 1, 2]),
        bits=r.choice([16, 24]) if fmt == "flac" else 16,
    )
    return p, r


def draw_sentence(r, lang):
    return de_sentence(r) if lang == "German" else en_sentence(r)


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), p.stderr.decode(errors="replace")))


def make_noise_beds(out_dir):
    for kind in NOISES:
        path = os.path.join(out_dir, "noise_%s.wav" % kind)
        if not os.path.exists(path):
            run(["sox", "-R", "-n", "-r", "22050", "-c", "1", "-b", "16", path,
                 "synth", str(NOISE_BED_SECONDS), kind, "norm", "-3"])


def render(job):
    """espeak-ng -> sox (pad, noise, level, tilt, rate, channels, format). Returns the path."""
    p, text, out_path, beds = job
    if os.path.exists(out_path):        # written atomically below: a rerun resumes
        return out_path
    with tempfile.TemporaryDirectory(prefix="corpus") as tmp:
        speech = os.path.join(tmp, "speech.wav")
        run(["espeak-ng", "-v", p["voice"], "-s", str(p["speed"]), "-p", str(p["pitch"]),
             "-g", str(p["gap"]), "-w", speech, text])
        with wave.open(speech, "rb") as w:
            dur = w.getnframes() / w.getframerate()
        total = p["lead"] + dur + p["trail"]
        padded = os.path.join(tmp, "padded.wav")
        run(["sox", "-R", speech, padded, "pad", str(p["lead"]), str(p["trail"])])
        cmd = ["sox", "-R"]
        if p["noise_db"] is not None:
            noise = os.path.join(tmp, "noise.wav")
            bed = os.path.join(beds, "noise_%s.wav" % p["noise"])
            run(["sox", "-R", bed, noise, "trim", str(p["noise_off"]), "%.4f" % total])
            # the bed is at -3 dBFS peak; speech peaks near 0 dBFS
            cmd += ["-m", "-v", "1", padded, "-v", "%.5f" % (10 ** (p["noise_db"] / 20)), noise]
        else:
            cmd += [padded]
        fmt_opts = ["-b", str(p["bits"])]
        if p["fmt"] == "ogg":
            fmt_opts = ["-C", "4"]
        part = os.path.join(tmp, "out." + p["fmt"])
        cmd += fmt_opts + [part, "bass", str(p["bass"]), "treble", str(p["treble"]),
                           "norm", str(p["level_db"]), "rate", str(p["rate"]),
                           "channels", str(p["channels"])]
        run(cmd)
        shutil.move(part, out_path + ".part")
        os.replace(out_path + ".part", out_path)
    return out_path


def build_split(out, split, n, seed, jobs, exclude):
    """Draw n entries (sentences unique within the split and not in `exclude`), render them."""
    adir = os.path.join(out, "audio", split)
    os.makedirs(adir, exist_ok=True)
    rows, seen, work = [], set(exclude), []
    for i in range(n):
        p, r = entry_params(seed, split, i)
        text = draw_sentence(r, p["lang"])
        while text in seen:
            text = draw_sentence(r, p["lang"])
        seen.add(text)
        uid = "%s-%05d" % (split, i)
        rel = os.path.join("audio", split, "%s.%s" % (uid, p["fmt"]))
        rows.append((rel, uid, p["lang"], p["voice"], p["subset"], text))
        work.append((p, text, os.path.join(out, rel), out))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for k, _ in enumerate(pool.map(render, work)):
            if (k + 1) % 1000 == 0:
                print("  %s: %d/%d" % (split, k + 1, n), file=sys.stderr)
    with open(os.path.join(out, split + ".tsv"), "w", encoding="utf-8") as f:
        f.write("path\tid\tref_language\tvoice\tsubset\ttext\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    return {row[5] for row in rows}


def test_sentences(seed, n):
    """The test split's sentences without rendering (what training must avoid)."""
    seen = set()
    for i in range(n):
        p, r = entry_params(seed, "test", i)
        text = draw_sentence(r, p["lang"])
        while text in seen:
            text = draw_sentence(r, p["lang"])
        seen.add(text)
    return seen


def vocabulary():
    """All words the grammar can produce (for the documentation and the tokenizer check)."""
    words = set()
    r = random.Random(0)
    for _ in range(200000):
        for s in (en_sentence(r), de_sentence(r)):
            words.update(re.findall(r"[^\W\d_]+", s.lower()))
    return words


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train", type=int, default=12000, help="training entries (default 12000)")
    ap.add_argument("--test", type=int, default=400, help="held-out entries (default 400)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel renders (default 2)")
    ap.add_argument("--splits", default="train,test", help="which splits to write")
    ap.add_argument("--count-words", action="store_true", help="print the vocabulary size and exit")
    args = ap.parse_args(argv)
    if args.count_words:
        print(len(vocabulary()))
        return 0
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            raise SystemExit("make_corpus.py: %s not found (scripts/deps.sh installs it)" % tool)
    os.makedirs(args.out_dir, exist_ok=True)
    make_noise_beds(args.out_dir)
    splits = args.splits.split(",")
    if "test" in splits:
        build_split(args.out_dir, "test", args.test, args.seed, args.jobs, set())
    if "train" in splits:
        build_split(args.out_dir, "train", args.train, args.seed, args.jobs,
                    test_sentences(args.seed, args.test))
    print("wrote %s: %s" % (args.out_dir, ", ".join(
        "%s %d" % (s, args.train if s == "train" else args.test) for s in splits)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
