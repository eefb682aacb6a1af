"""A live Re-ID service on any runtime the bench knows: a persistent gallery, a vector store, dynamic
batching, and a FastAPI app with a web page.

    reid-export index build --data runs/demo/data/bounding_box_test --model runs/demo/model.onnx -o runs/gallery
    reid-export serve --model runs/demo/model.onnx --gallery runs/gallery

* `gallery`: the gallery folder (items, embeddings, stored crops, the model it was built with), written
  atomically; `indexing` fills it from a folder of images through a runtime.
* `stores`: the vector search behind one small interface: `EmbeddedStore` (exact, in memory) and
  `MilvusStore` (`store_milvus`, pymilvus; a Milvus cluster or milvus-lite).
* `batching`: concurrent requests coalesced into one runtime call.
* `service`, `app`, `server`: the service logic, the FastAPI app, and uvicorn with safe defaults.

FastAPI, uvicorn, prometheus-client and pymilvus are imported only by the modules that need them
(`pip install "reid-export[serve]"`, `[milvus]`).
"""
