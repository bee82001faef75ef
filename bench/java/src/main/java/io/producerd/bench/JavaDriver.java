package io.producerd.bench;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;

/**
 * Driver 3 of producerd's side-by-side benchmark: Apache RocketMQ's DefaultMQProducer
 * with its defaults (2 retries, JSON headers, zlib over 4 KiB at level 5). It takes the
 * same flags, runs the same phases and prints the same "MARK start", "MARK end" and
 * "RESULT ..." lines as the Go drivers (bench/internal/load):
 * <ul>
 * <li>sync: -concurrency threads calling send(msg);</li>
 * <li>async: send(msg, callback), a semaphore bounding -concurrency in flight;</li>
 * <li>batch: -concurrency threads calling send(Collection) with -batch messages.</li>
 * </ul>
 * -strategy latency-fault turns sendLatencyFaultEnable on.
 */
public final class JavaDriver {
  static final String DRIVER = "java";

  // Parameters (same names and defaults as the Go drivers).
  String namesrv = "127.0.0.1:9876", topic = "IT_Bench", mode = "sync", strategy = "", group = "", trace = "", label = "";
  int n = 100000, size = 1024, concurrency = 1, batch = 32, warmup = 1000;
  long durationNs = TimeUnit.SECONDS.toNanos(15), timeoutNs = TimeUnit.SECONDS.toNanos(3);
  double rate = 0;
  boolean handshake = false;

  DefaultMQProducer producer;
  byte[] body;

  public static void main(String[] args) throws Exception {
    JavaDriver d = new JavaDriver();
    try {
      d.parse(args);
      d.run();
    } catch (IllegalArgumentException e) {
      System.err.println(DRIVER + ": " + e.getMessage());
      System.exit(2);
    }
    System.exit(0);
  }

  void parse(String[] a) {
    for (int i = 0; i < a.length; i++) {
      String k = a[i], v = null;
      if (k.startsWith("--")) k = k.substring(1);
      int eq = k.indexOf('=');
      if (eq > 0) {
        v = k.substring(eq + 1);
        k = k.substring(0, eq);
      }
      if (k.equals("-handshake")) {
        handshake = v == null || Boolean.parseBoolean(v);
        continue;
      }
      if (v == null) {
        if (i + 1 >= a.length) throw new IllegalArgumentException("flag needs a value: " + k);
        v = a[++i];
      }
      switch (k) {
        case "-namesrv": namesrv = v; break;
        case "-topic": topic = v; break;
        case "-mode": mode = v; break;
        case "-n": n = Integer.parseInt(v); break;
        case "-duration": durationNs = parseDuration(v); break;
        case "-size": size = Integer.parseInt(v); break;
        case "-concurrency": concurrency = Integer.parseInt(v); break;
        case "-batch": batch = Integer.parseInt(v); break;
        case "-warmup": warmup = Integer.parseInt(v); break;
        case "-rate": rate = Double.parseDouble(v); break;
        case "-strategy": strategy = v; break;
        case "-group": group = v; break;
        case "-timeout": timeoutNs = parseDuration(v); break;
        case "-trace": trace = v; break;
        case "-label": label = v; break;
        default: throw new IllegalArgumentException("unknown flag " + k);
      }
    }
    if (!mode.equals("sync") && !mode.equals("async") && !mode.equals("batch"))
      throw new IllegalArgumentException("-mode " + mode + ": want sync, async or batch");
    if (n <= 0 || size <= 0 || concurrency <= 0 || batch <= 0 || warmup < 0 || rate < 0)
      throw new IllegalArgumentException("-n, -size, -concurrency, -batch must be positive; -warmup, -rate not negative");
  }

  /** Parses a Go-style duration made of ms, s, m and h terms, e.g. "1m30s", "500ms". */
  static long parseDuration(String s) {
    long total = 0;
    int i = 0;
    while (i < s.length()) {
      int j = i;
      while (j < s.length() && (Character.isDigit(s.charAt(j)) || s.charAt(j) == '.')) j++;
      if (j == i) throw new IllegalArgumentException("bad duration " + s);
      double num = Double.parseDouble(s.substring(i, j));
      int k = j;
      while (k < s.length() && Character.isLetter(s.charAt(k))) k++;
      String unit = s.substring(j, k);
      double mul;
      switch (unit) {
        case "ns": mul = 1; break;
        case "us": mul = 1e3; break;
        case "ms": mul = 1e6; break;
        case "s": mul = 1e9; break;
        case "m": mul = 60e9; break;
        case "h": mul = 3600e9; break;
        default: throw new IllegalArgumentException("bad duration unit in " + s);
      }
      total += (long) (num * mul);
      i = k;
    }
    return total;
  }

  int perOp() { return mode.equals("batch") ? batch : 1; }

  /** The benchmark body: the same bytes as load.Body in Go. */
  static byte[] body(int size) {
    byte[] b = new byte[size];
    long x = 42;
    for (int i = 0; i < size; i++) {
      if (i % 8 == 7) {
        b[i] = ' ';
        continue;
      }
      x = x * 6364136223846793005L + 1442695040888963407L;
      b[i] = (byte) ('a' + Long.remainderUnsigned(x >>> 33, 26));
    }
    return b;
  }

  Message msg(int i) { return new Message(topic, "bench", "k" + i, body); }

  void run() throws Exception {
    body = body(size);
    String g = group.isEmpty() ? "bench_java_" + ProcessHandle.current().pid() : group;
    producer = new DefaultMQProducer(g);
    producer.setNamesrvAddr(namesrv);
    producer.setInstanceName(g);
    producer.setSendMsgTimeout((int) TimeUnit.NANOSECONDS.toMillis(timeoutNs));
    if (strategy.equals("latency-fault")) producer.setSendLatencyFaultEnable(true);
    else if (!strategy.isEmpty() && !strategy.equals("default"))
      throw new IllegalArgumentException("unknown -strategy " + strategy + " (want default or latency-fault)");
    producer.start();
    try {
      if (warmup > 0) {
        int ops = (warmup + perOp() - 1) / perOp();
        Recorder w = new Recorder(ops, perOp());
        phase(w, ops, 1_000_000_000, Math.min(TimeUnit.SECONDS.toNanos(30), Math.max(durationNs, TimeUnit.SECONDS.toNanos(10))), 0);
        Result wr = new Result();
        w.fill(wr, 1_000_000_000L);
        if (wr.msgs == 0) {
          System.err.println(DRIVER + ": warm-up: all " + wr.errors + " messages failed (is the cluster up and topic " + topic + " created?)");
          System.exit(1);
        }
        System.err.println(DRIVER + ": warm-up " + wr.msgs + " messages ok, " + wr.errors + " failed");
      }
      int ops = (n + perOp() - 1) / perOp();
      double cpu0 = procCPU();
      System.out.println("MARK start");
      System.out.flush();
      Recorder rec = new Recorder(ops, perOp());
      long elapsed = phase(rec, ops, 0, durationNs, rate);
      double cpu1 = procCPU();
      long hwm = peakRSS();
      System.out.println("MARK end");
      System.out.flush();
      if (handshake) waitStdinClosed(10_000);
      Result r = new Result();
      r.cpu = cpu1 - cpu0;
      r.rssMiB = hwm / 1048576.0;
      rec.fill(r, elapsed);
      if (!trace.isEmpty()) rec.writeTrace(Path.of(trace));
      System.out.println(r.line(this));
      System.out.flush();
    } finally {
      producer.shutdown();
    }
  }

  /** Runs up to ops operations until dur passed; returns the phase's length in ns. */
  long phase(Recorder rec, int ops, int base, long dur, double rate) throws InterruptedException {
    long hard = dur + timeoutNs + TimeUnit.SECONDS.toNanos(15);
    AtomicInteger logged = new AtomicInteger();
    int per = perOp();
    if (mode.equals("async")) {
      Semaphore sem = new Semaphore(concurrency);
      AtomicInteger outstanding = new AtomicInteger();
      Pacer pc = new Pacer(rate, 1, 0, 1);
      for (int i = 0; i < ops; i++) {
        if (rec.since() >= dur) break;
        long left = hard - rec.since();
        if (left <= 0 || !sem.tryAcquire(left, TimeUnit.NANOSECONDS)) break;
        pc.await();
        final int idx = i;
        final long st = rec.since();
        outstanding.incrementAndGet();
        try {
          producer.send(msg(base + i), new SendCallback() {
            @Override public void onSuccess(SendResult r) {
              finish(rec, idx, st, r, null, logged);
              outstanding.decrementAndGet();
              sem.release();
            }
            @Override public void onException(Throwable e) {
              finish(rec, idx, st, null, e, logged);
              outstanding.decrementAndGet();
              sem.release();
            }
          });
        } catch (Exception e) {
          finish(rec, idx, st, null, e, logged);
          outstanding.decrementAndGet();
          sem.release();
        }
      }
      while (outstanding.get() > 0 && rec.since() < hard) Thread.sleep(1);
      if (outstanding.get() > 0) System.err.println("phase: sends still unanswered; left out");
    } else {
      AtomicInteger next = new AtomicInteger();
      CountDownLatch done = new CountDownLatch(concurrency);
      for (int w = 0; w < concurrency; w++) {
        final int wid = w;
        Thread t = new Thread(() -> {
          try {
            Pacer pc = new Pacer(rate, per, wid, concurrency);
            for (;;) {
              int i = next.getAndIncrement();
              if (i >= ops || rec.since() >= dur) return;
              pc.await();
              long st = rec.since();
              SendResult r = null;
              Throwable err = null;
              try {
                if (mode.equals("batch")) {
                  List<Message> msgs = new ArrayList<>(per);
                  for (int k = 0; k < per; k++) msgs.add(msg(base + i * per + k));
                  r = producer.send(msgs);
                } else {
                  r = producer.send(msg(base + i));
                }
              } catch (Throwable e) {
                err = e;
              }
              finish(rec, i, st, r, err, logged);
            }
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          } finally {
            done.countDown();
          }
        }, "sender-" + w);
        t.setDaemon(true);
        t.start();
      }
      if (!done.await(Math.max(hard - rec.since(), TimeUnit.SECONDS.toNanos(1)), TimeUnit.NANOSECONDS))
        System.err.println("phase: sends still unanswered; left out");
    }
    long last = rec.last.get();
    return last > 0 ? last : rec.since();
  }

  void finish(Recorder rec, int i, long st, SendResult r, Throwable e, AtomicInteger logged) {
    if (e == null && r != null && r.getSendStatus() != SendStatus.SEND_OK) e = new RuntimeException("send status " + r.getSendStatus());
    if (e != null && logged.incrementAndGet() <= 5) System.err.println("send failed: " + e);
    String broker = e == null && r != null && r.getMessageQueue() != null ? r.getMessageQueue().getBrokerName() : "";
    rec.add(i, st, broker, e == null);
  }

  static void waitStdinClosed(long limitMs) {
    Thread t = new Thread(() -> {
      try {
        InputStream in = System.in;
        byte[] buf = new byte[256];
        while (in.read(buf) >= 0) { }
      } catch (IOException ignored) {
      }
    });
    t.setDaemon(true);
    t.start();
    try {
      t.join(limitMs);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** CPU seconds (utime + stime) of this process from /proc/self/stat, in USER_HZ = 100. */
  static double procCPU() throws IOException {
    String s = Files.readString(Path.of("/proc/self/stat"), StandardCharsets.US_ASCII);
    String[] f = s.substring(s.lastIndexOf(')') + 2).trim().split("\\s+");
    return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
  }

  /** Peak RSS (VmHWM) of this process in bytes. */
  static long peakRSS() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.US_ASCII)) {
      if (line.startsWith("VmHWM:")) return Long.parseLong(line.substring(6).trim().split("\\s+")[0]) * 1024;
    }
    throw new IOException("no VmHWM in /proc/self/status");
  }

  /** Spaces one sender's operations; see load.pacer. */
  static final class Pacer {
    final long every;
    long next;

    Pacer(double rate, int perOp, int w, int n) {
      every = rate <= 0 ? 0 : (long) (1e9 * perOp * n / rate);
      next = System.nanoTime() + (every == 0 ? 0 : every * w / n);
    }

    void await() throws InterruptedException {
      if (every == 0) return;
      long now = System.nanoTime();
      long d = next - now;
      if (d > 0) TimeUnit.NANOSECONDS.sleep(d);
      else if (-d > every) next = now;
      next += every;
    }
  }

  /** One slot per operation, as load.Recorder. */
  static final class Recorder {
    final long t0 = System.nanoTime();
    final long t0UnixUs = unixMicros();
    final int perOp;
    final long[] start, lat;
    final byte[] state, broker;
    final List<String> names = new ArrayList<>();
    final Map<String, Byte> index = new ConcurrentHashMap<>();
    final AtomicLong last = new AtomicLong();

    Recorder(int ops, int perOp) {
      this.perOp = perOp;
      start = new long[ops];
      lat = new long[ops];
      state = new byte[ops];
      broker = new byte[ops];
    }

    static long unixMicros() {
      java.time.Instant now = java.time.Instant.now();
      return now.getEpochSecond() * 1_000_000L + now.getNano() / 1000;
    }

    long since() { return System.nanoTime() - t0; }

    void add(int i, long st, String b, boolean ok) {
      long end = since();
      start[i] = st;
      lat[i] = end - st;
      state[i] = (byte) (ok ? 1 : 2);
      if (ok) broker[i] = intern(b);
      last.accumulateAndGet(end, Math::max);
    }

    byte intern(String name) {
      if (name == null || name.isEmpty()) return 0;
      Byte id = index.get(name);
      if (id != null) return id;
      synchronized (this) {
        id = index.get(name);
        if (id != null) return id;
        if (names.size() >= 120) return 0;
        names.add(name);
        id = (byte) names.size();
        index.put(name, id);
        return id;
      }
    }

    void fill(Result r, long elapsedNs) {
      long[] lats = new long[state.length];
      int m = 0;
      for (int i = 0; i < state.length; i++) {
        if (state[i] == 0) continue;
        lats[m++] = lat[i];
        if (lat[i] > 1_000_000_000L) r.slow++;
        if (state[i] == 2) {
          r.errors += perOp;
          continue;
        }
        r.msgs += perOp;
        String name = broker[i] > 0 ? names.get(broker[i] - 1) : "?";
        r.brokers.merge(name, perOp, Integer::sum);
      }
      r.sec = elapsedNs / 1e9;
      if (r.sec > 0) r.msgsPerSec = r.msgs / r.sec;
      long[] sorted = Arrays.copyOf(lats, m);
      Arrays.sort(sorted);
      r.p50 = percentile(sorted, 50);
      r.p99 = percentile(sorted, 99);
      r.p999 = percentile(sorted, 99.9);
      r.max = percentile(sorted, 100);
    }

    static double percentile(long[] sorted, double q) {
      if (sorted.length == 0) return 0;
      int rank = (int) (q / 100 * sorted.length + 0.999999999) - 1;
      rank = Math.max(0, Math.min(rank, sorted.length - 1));
      return sorted[rank] / 1e6;
    }

    void writeTrace(Path p) throws IOException {
      try (BufferedWriter w = Files.newBufferedWriter(p, StandardCharsets.US_ASCII)) {
        w.write("start_unix_us,latency_us,broker,ok\n");
        for (int i = 0; i < state.length; i++) {
          if (state[i] == 0) continue;
          boolean ok = state[i] == 1;
          String name = ok && broker[i] > 0 ? names.get(broker[i] - 1) : "";
          w.write((t0UnixUs + start[i] / 1000) + "," + (lat[i] / 1000) + "," + name + "," + (ok ? 1 : 0) + "\n");
        }
      }
    }
  }

  /** The result line, formatted exactly as load.Result.String. */
  static final class Result {
    int msgs, errors, slow;
    double sec, msgsPerSec, p50, p99, p999, max, cpu, rssMiB;
    final Map<String, Integer> brokers = new TreeMap<>();

    String line(JavaDriver d) {
      StringBuilder b = new StringBuilder(String.format(Locale.ROOT,
          "RESULT driver=%s label=%s mode=%s conc=%d size=%d batch=%d msgs=%d errors=%d slow=%d sec=%.3f msgs_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f cpu_s=%.2f rss_mib=%.1f brokers=",
          DRIVER, d.label.isEmpty() ? "-" : d.label, d.mode, d.concurrency, d.size, d.perOp(), msgs, errors, slow, sec, msgsPerSec,
          p50, p99, p999, max, cpu, rssMiB));
      if (brokers.isEmpty()) b.append('-');
      boolean first = true;
      for (Map.Entry<String, Integer> e : brokers.entrySet()) {
        if (!first) b.append(',');
        first = false;
        b.append(e.getKey()).append(':').append(e.getValue());
      }
      return b.toString();
    }
  }
}
