pub struct FeatureManifest; pub fn read_feature_frame(){}
