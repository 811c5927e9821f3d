// load_model: metadata → registry → build → weights.
#include "nets/model_io.h"

namespace activeip {

LoadedModel load_model(const std::string& path, Context& ctx) {
  const SafetensorsReader file(path);
  LoadedModel m;
  m.meta = ModelMeta::from_metadata(file.metadata(), path);
  try {
    m.net = make_net(m.meta.net, {m.meta.H, m.meta.W, m.meta.C, m.meta.num_classes, m.meta.channels});
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());  // the registry does not know which file named the net
  }
  m.net->build(ctx, 0);
  load_weights(file, *m.net, ctx);
  return m;
}

DataSplits load_test_split(const ModelMeta& meta, const std::string& model, DataSpec spec) {
  const DataShape shape = dataset_shape(spec.name);
  ENSURE(shape.H == meta.H && shape.W == meta.W && shape.C == meta.C, "%s takes %dx%dx%d images but %s has %dx%dx%d",
         model.c_str(), meta.H, meta.W, meta.C, spec.name.c_str(), shape.H, shape.W, shape.C);
  ENSURE(shape.num_classes <= meta.num_classes, "%s has %d outputs but %s has %d classes", model.c_str(),
         meta.num_classes, spec.name.c_str(), shape.num_classes);
  spec.limit_train = 0;  // only the test split is used: the training files are not opened, nor needed
  return load_data(spec);
}

}  // namespace activeip
