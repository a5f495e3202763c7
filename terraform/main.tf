# The production registry: a private bucket served by CloudFront, and the
# IAM roles publishers and the pruner assume. With aws_only_resources =
# false, only the bucket (versioning, encryption) is created, which an
# S3-compatible store such as MinIO accepts.

module "bucket" {
  source = "./modules/bucket"

  bucket_name                 = var.bucket_name
  registry_prefix             = var.registry_prefix
  aws_only_resources          = var.aws_only_resources
  force_destroy               = var.force_destroy
  kms_key_arn                 = var.kms_key_arn
  noncurrent_version_days     = var.noncurrent_version_days
  enforce_conditional_writes  = var.enforce_conditional_writes
  cloudfront_list_bucket      = var.cloudfront_list_bucket
  cloudfront_distribution_arn = one(module.cdn[*].arn)
}

module "cdn" {
  source = "./modules/cdn"
  count  = var.aws_only_resources ? 1 : 0

  name                        = var.name
  bucket_regional_domain_name = module.bucket.regional_domain_name
  registry_prefix             = var.registry_prefix
  catalog_ttl                 = var.catalog_ttl
  images_ttl                  = var.images_ttl
  price_class                 = var.price_class
  viewer_protocol_policy      = var.viewer_protocol_policy
  aliases                     = var.aliases
  acm_certificate_arn         = var.acm_certificate_arn
  logging_bucket              = var.logging_bucket
}

module "publisher" {
  source = "./modules/publisher"
  count  = var.aws_only_resources ? 1 : 0

  name                 = var.name
  bucket_arn           = module.bucket.arn
  registry_prefix      = var.registry_prefix
  distribution_arn     = one(module.cdn[*].arn)
  kms_key_arn          = var.kms_key_arn
  publisher_principals = var.publisher_principals
  prune_principals     = var.prune_principals
}
