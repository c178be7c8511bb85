"""What bench_serve.py reports: its checks against the serving goals, and the result as
markdown."""

from __future__ import annotations


def checks(r: dict) -> dict[str, object]:  # type: ignore[type-arg]
    ours, off, peer = r["effnet_serve"], r["offline"], r["fastapi_timm_eager"]
    half, over = ours["half_load"], ours["overload_2x"]
    return {
        "saturated_vs_offline_batch8": ours["c32"]["img_per_s"] / off["batch8_img_per_s"],
        "batching_on_vs_off_c32": ours["c32"]["img_per_s"] / ours["no_batching_c32"]["img_per_s"],
        "added_latency_c1_p50_ms": ours["c1"]["p50_ms"] - off["batch1_p50_ms"],
        "half_load_p99_over_2p50_plus_delay": half["p99_ms"] / (2 * half["p50_ms"] + 5.0),
        "half_load_paced_p99_over_2p50_plus_delay": half["paced"]["p99_ms"] / (2 * half["paced"]["p50_ms"] + 5.0),
        "half_load_model_ratio": {k: v["ratio"] for k, v in half["model"].items()},
        "overload_codes": over["codes"],
        "overload_lost": over["lost"],
        "overload_429_max_ms": over["rejected_429"]["max_ms"],
        "overload_429_p99_ms": over["rejected_429"]["p99_ms"],
        "overload_429_p50_ms": over["rejected_429"]["p50_ms"],
        "memory_10000_over_1000": ours["memory"]["ratio"],
        "vs_fastapi_timm_c32_throughput": ours["c32"]["img_per_s"] / peer["c32"]["img_per_s"],
        "vs_fastapi_timm_c1_p50": ours["c1"]["p50_ms"] / peer["c1"]["p50_ms"],
    }



def to_markdown(r: dict) -> str:  # type: ignore[type-arg]
    ours, off, peer, c = r["effnet_serve"], r["offline"], r["fastapi_timm_eager"], r["checks"]
    lines = [f"# effnet serve under load: {r['model']} ({r['weights']}), 224 px, {r['runtime']}, {r['threads']} threads",
             "", f"CPU: {r['machine']['cpu']['processor']}, {r['machine']['cores']} cores, "
             f"AVX-512 VNNI: {r['machine']['cpu']['avx512_vnni']}. Client and server share the cores; the open-loop "
             f"client ran at nice {ours['overload_2x'].get('client_nice', 0)} (the server at 0, its inference "
             "threads at +15).", "",
             "| path | concurrency | img/s | p50 ms | p99 ms | codes |", "|---|---|---|---|---|---|",
             f"| offline `effnet predict`, batch 8 | - | {off['batch8_img_per_s']:.1f} | | | |",
             f"| offline `effnet predict`, batch 1 | 1 | | {off['batch1_p50_ms']:.1f} | | |"]
    for key, label in (("c1", "effnet serve"), ("c8", "effnet serve"), ("c32", "effnet serve"),
                       ("no_batching_c32", "effnet serve --max-batch 1")):
        row = ours[key]
        lines.append(f"| {label} | {row['concurrency']} | {row['img_per_s']:.1f} | {row['p50_ms']:.1f} | "
                     f"{row['p99_ms']:.1f} | {row['codes']} |")
    for key in ("c1", "c32"):
        row = peer[key]
        lines.append(f"| FastAPI + timm eager per request | {row['concurrency']} | {row['img_per_s']:.1f} | "
                     f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['codes']} |")
    half, over = ours["half_load"], ours["overload_2x"]
    lines += ["", f"Half load ({half['rate']:.1f} req/s, Poisson arrivals, {half['seconds']:.0f} s): "
              f"p50 {half['p50_ms']:.1f} ms, p99 {half['p99_ms']:.1f} ms, codes {half['codes']}; inside the app p50 <= "
              f"{half['server_200']['p50_bound_ms']:g}, p99 <= {half['server_200']['p99_bound_ms']:g} ms; the client's "
              f"loop late by p99 {half['client_loop_lag']['p99_ms']:.1f} ms. The same rate paced (equal gaps): p50 "
              f"{half['paced']['p50_ms']:.1f}, p99 {half['paced']['p99_ms']:.1f} ms, codes {half['paced']['codes']}.",
              "", "The queue model (`ideal_batcher`: a perfect batching server, no client, no noise; runtime alone "
              f"for batch 1..8: {', '.join(f'{t:.1f}' for t in r['batch_ms'])} ms, plus "
              f"{half['model']['poisson']['per_image_outside_ms']:.1f} ms a image outside it, from the saturated "
              "throughput), over 200 runs as long as the measurement (median, 10th-90th percentile):", "",
              "| arrivals | p50 ms | p99 ms | p99 / (2 p50 + 5 ms) | one run 100x as long |", "|---|---|---|---|---|",
              *(f"| {k} | {m['p50_ms'][0]:.1f} ({m['p50_ms'][1]:.1f}-{m['p50_ms'][2]:.1f}) | {m['p99_ms'][0]:.1f} "
                f"({m['p99_ms'][1]:.1f}-{m['p99_ms'][2]:.1f}) | {m['ratio'][0]:.2f} ({m['ratio'][1]:.2f}-{m['ratio'][2]:.2f}) "
                f"| {m['long_run']['ratio']:.2f} |" for k, m in half["model"].items()), "",
              f"2x overload ({over['rate']:.1f} req/s, Poisson arrivals, {over['seconds']:.0f} s): codes {over['codes']}, "
              f"{over['lost']} without an answer; 429 answered in p50 {over['rejected_429']['p50_ms']:.1f} / p99 "
              f"{over['rejected_429']['p99_ms']:.1f} / max {over['rejected_429']['max_ms']:.1f} ms; accepted p50 "
              f"{over['p50_ms']:.0f} / p99 {over['p99_ms']:.0f} ms. Inside the app (its own histogram, from the "
              f"ASGI call to the response): {over['server_429']['within_20ms']:.1%} of the 429s within 20 ms, "
              f"p99 <= {over['server_429']['p99_bound_ms']:g} ms; the server's event loop woke late by p99 <= "
              f"{over['server_loop_lag']['p99_bound_ms']:g} ms; the client's own loop by p50 "
              f"{over['client_loop_lag']['p50_ms']:.1f} / p99 {over['client_loop_lag']['p99_ms']:.1f} / max "
              f"{over['client_loop_lag']['max_ms']:.0f} ms.",
              f"Server memory: {ours['memory']['after_1000_mb']:.0f} MB after 1,000 requests, "
              f"{ours['memory']['after_10000_mb']:.0f} MB after 10,000 (x{ours['memory']['ratio']:.3f}).", "",
              "| check | goal | measured |", "|---|---|---|",
              f"| saturated (c32) / offline batch 8 | >= 0.85 | {c['saturated_vs_offline_batch8']:.2f} |",
              f"| batching on / off at c32 | >= 1.2 | {c['batching_on_vs_off_c32']:.2f} |",
              f"| added p50 latency at c1 over offline batch 1 | <= 5 ms | {c['added_latency_c1_p50_ms']:.1f} ms |",
              f"| half-load p99 / (2 p50 + 5 ms), Poisson arrivals | <= 1 | {c['half_load_p99_over_2p50_plus_delay']:.2f} "
              f"(queue model: {c['half_load_model_ratio']['poisson'][0]:.2f}) |",
              f"| the same, paced arrivals | <= 1 | {c['half_load_paced_p99_over_2p50_plus_delay']:.2f} "
              f"(queue model: {c['half_load_model_ratio']['paced'][0]:.2f}) |",
              f"| 2x overload: codes, unanswered | 200/429 only, 0 | {c['overload_codes']}, {c['overload_lost']} |",
              f"| 2x overload: every 429 | < 20 ms | p50 {c['overload_429_p50_ms']:.1f}, p99 {c['overload_429_p99_ms']:.1f}, "
              f"max {c['overload_429_max_ms']:.1f} ms |",
              f"| memory after 10,000 / after 1,000 | <= 1.10 | {c['memory_10000_over_1000']:.3f} |",
              f"| throughput at c32 vs FastAPI + timm eager | | {c['vs_fastapi_timm_c32_throughput']:.2f}x |",
              f"| p50 at c1 vs FastAPI + timm eager | | {c['vs_fastapi_timm_c1_p50']:.2f}x |", ""]
    return "\n".join(lines)

