"""What a user would write instead of `effnet serve`: a FastAPI endpoint that runs timm's
eager model per request (the common tutorial shape: `async def`, the model called inline).

    uvicorn --app-dir benchmarks serve_peer_timm:app --port 8001

timm's tf_efficientnet_lite0 is the same architecture as effnet's Lite0 (random weights:
speed does not depend on them, and nothing here can download timm's).
"""

import io

import timm
import torch
from fastapi import FastAPI, Request
from PIL import Image

torch.set_num_threads(2)
model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
app = FastAPI()


@app.post("/classify")
async def classify(request: Request):  # type: ignore[no-untyped-def]
    image = Image.open(io.BytesIO(await request.body())).convert("RGB")
    with torch.inference_mode():
        probabilities = model(transform(image).unsqueeze(0)).softmax(-1)[0]
    scores, indices = probabilities.topk(5)
    return {"predictions": [{"index": int(i), "score": float(s)} for s, i in zip(scores, indices)]}
